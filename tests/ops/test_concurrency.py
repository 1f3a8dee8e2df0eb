"""REL-01 and LOG-04 on a real database of their own: concurrent writers lose nothing and never see
"database is locked"; the audit trail cannot be changed or deleted, even with plain SQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from pmo.accounts.models import Role, User
from pmo.accounts.permissions import Actor
from pmo.audit import service as audit
from pmo.audit.models import AuditEntry
from pmo.cli import upgrade_database
from pmo.db import Database
from tests.databases import own_database

THREADS, WRITES = 20, 50


@pytest.fixture
def database(tmp_path):
    url = own_database(tmp_path, "ops")
    upgrade_database(url)
    db = Database(url)
    yield db
    db.engine.dispose()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path):
    # Always on a SQLite file: this checks the embedded default's wiring, whatever the test database.
    sqlite = Database(f"sqlite:///{tmp_path / 'pragmas.sqlite3'}")
    with sqlite.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    sqlite.engine.dispose()


def test_concurrent_writers_lose_nothing(database):
    with database.session() as session:
        for n in range(THREADS):
            session.add(User(login_id=f"writer{n:02d}", display_name="書き込み", email=f"w{n}@example.jp",
                             role=Role.BODY_STAFF, password_hash="x", must_change_password=False))
        session.commit()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        actor = Actor(user_id=n + 1, login_id=f"writer{n:02d}", role=Role.BODY_STAFF)
        try:
            for i in range(WRITES):
                with database.session() as session:
                    user = session.scalar(select(User).where(User.login_id == f"writer{n:02d}"))
                    before = user.display_name
                    user.display_name = f"書き込み{i}"
                    audit.record(session, actor, "test.write", target=user, before={"name": before},
                                 after={"name": user.display_name})
                    session.commit()
                with database.session(write=False) as session:  # a concurrent reader
                    session.scalar(select(sa.func.count()).select_from(AuditEntry))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors[:3]
    with database.session(write=False) as session:
        assert session.scalar(select(sa.func.count()).where(AuditEntry.action == "test.write")) == THREADS * WRITES
        names = set(session.scalars(select(User.display_name).where(User.login_id.like("writer%"))))
    assert names == {f"書き込み{WRITES - 1}"}


def test_audit_entries_cannot_be_changed_or_deleted(database):
    with database.session() as session:
        audit.record(session, None, "test.fact", actor_login="cli", detail="記録")
        session.commit()
    for statement in ("UPDATE audit_entries SET detail = 'changed'", "DELETE FROM audit_entries"):
        with pytest.raises(sa.exc.DBAPIError):
            with database.engine.begin() as conn:
                conn.exec_driver_sql(statement)
    with database.session(write=False) as session:
        assert session.scalar(select(AuditEntry.detail).where(AuditEntry.action == "test.fact")) == "記録"
