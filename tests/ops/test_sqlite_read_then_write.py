"""REL-01 across processes on SQLite: a GET that reads, then writes (last_seen, a read mark, an audit
entry) after another process committed, waits its turn instead of failing with "database is locked".

Always on a SQLite file: this checks the embedded default's wiring (``pmo serve --workers 2``).
"""

from __future__ import annotations

import sqlalchemy as sa

from pmo.accounts.models import Role, User
from pmo.cli import upgrade_database
from pmo.db import Database


def _user(login_id: str) -> User:
    return User(login_id=login_id, display_name="読んでから書く", email=f"{login_id}@example.jp",
                role=Role.BODY_STAFF, password_hash="x", must_change_password=False)


def test_a_read_transaction_that_writes_after_another_process_committed_succeeds(tmp_path):
    url = f"sqlite:///{tmp_path / 'rw.sqlite3'}"
    upgrade_database(url)
    worker_a, worker_b = Database(url), Database(url)  # two processes: two engines, two pools
    try:
        with worker_a.session(write=False) as get_request:
            before = get_request.scalar(sa.select(sa.func.count()).select_from(User))  # the read snapshot
            with worker_b.session() as post_request:
                post_request.add(_user("other-process"))
                post_request.commit()
            get_request.add(_user("after-reading"))  # plain BEGIN upgraded here used to fail at once
            get_request.commit()
        with worker_a.session(write=False) as check:
            assert check.scalar(sa.select(sa.func.count()).select_from(User)) == before + 2
    finally:
        worker_a.engine.dispose()
        worker_b.engine.dispose()
