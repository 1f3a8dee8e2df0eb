"""A database of a test's own, for tests that need committed data visible to other processes or
threads (the shared test database runs each test in a rolled-back transaction)."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa


def own_database(tmp_path: Path, suffix: str) -> str:
    """A SQLite file in ``tmp_path``, or a fresh PostgreSQL database ``<test db>_<suffix>``."""
    base = os.environ.get("PMO_TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{tmp_path / f'{suffix}.sqlite3'}"
    url = sa.make_url(base)
    name = f"{url.database}_{suffix}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
