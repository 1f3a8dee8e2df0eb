"""REL-10 beyond tests/test_migrations.py: on a database of its own, upgrade from empty, downgrade the
last revision and back with the data kept, downgrade to nothing, ``alembic check`` finds no drift, and a
migration that fails half-way leaves no trace (transactional DDL on SQLite and PostgreSQL).

There is no earlier release yet: the first one will add "upgrade from the previous release's snapshot".
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from pmo.cli import alembic_config, upgrade_database
from pmo.paths import data_dir
from tests.databases import own_database


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_and_upgrade_again_keep_the_data(tmp_path):
    """REL-10: head from empty, seed, downgrade one revision and upgrade again: the rows are kept;
    ``alembic check`` reports no drift; downgrading to base removes every table."""
    url = own_database(tmp_path, "rel10")
    cfg = alembic_config(url)
    upgrade_database(url)
    command.check(cfg)  # raises when the models and the migrations differ
    engine = sa.create_engine(url)
    from pmo.db import make_session_factory
    from pmo.seeding import run_seed

    with make_session_factory(engine)() as session:
        run_seed(session, data_dir("seed"))
        session.commit()
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                  for t in ("bodies", "ministries", "subtasks")}
    engine.dispose()
    assert all(counts.values())
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    previous = script.get_revision(head).down_revision
    command.downgrade(cfg, previous)
    upgrade_database(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in counts} == counts
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head
    engine.dispose()
    command.downgrade(cfg, "base")
    assert _tables(url) == set()
    upgrade_database(url)
    assert "bodies" in _tables(url)


def test_a_failing_migration_leaves_no_trace(tmp_path, monkeypatch):
    """REL-10: migrations run in one transaction (PostgreSQL and SQLite both have transactional DDL):
    a failure half-way rolls back the tables created before it."""
    url = own_database(tmp_path, "rel10b")
    from alembic import op

    real_create_table = op.create_table
    made = []

    def failing_create_table(name, *args, **kwargs):
        made.append(name)
        if len(made) == 5:
            raise RuntimeError("disk full (simulated)")
        return real_create_table(name, *args, **kwargs)

    monkeypatch.setattr(op, "create_table", failing_create_table)
    with pytest.raises(RuntimeError):
        upgrade_database(url)
    assert len(made) == 5 and _tables(url) == set()
