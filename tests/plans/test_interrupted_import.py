"""REL-05: a large plan import confirmed in another process and SIGKILLed half-way through its
writes leaves the database exactly as before; after the lease (heartbeat) expires the job shows 中断
instead of staying 処理中, its staged file is removed, and importing the file again succeeds.

Runs on its own database (SQLite file or a PostgreSQL database next to the test one), because the
worker process must see committed data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmo import create_app
from pmo.accounts.mfa_service import enrol_known_secret
from pmo.accounts.models import Role, User
from pmo.accounts.service import actor_for, hash_password
from pmo.cli import upgrade_database
from pmo.core import clock
from pmo.core.tabular import write_csv
from pmo.db import Base, write_intent
from pmo.paths import data_dir
from pmo.plans import imports
from pmo.plans.models import ImportJob, ImportStatus, Plan
from tests.conftest import SECRET, TEST_PASSWORD, TEST_TOTP_SECRET, PortalClient, log_in
from tests.databases import own_database
from tests.plans.conftest import reaped

ROWS = 20_000
WORKER = Path(__file__).with_name("interrupted_import_worker.py")
# Tables the interrupted confirmation may touch besides the job itself (and the viewer's session row).
NOT_COMPARED = {"import_jobs", "user_sessions"}


def _snapshot(engine: sa.Engine) -> dict[str, tuple[int, str]]:
    """Row count and a hash of every row, per table (ordered by primary key)."""
    out = {}
    token = write_intent.set(False)  # a plain BEGIN: reading must not wait for the worker's write lock
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_COMPARED:
                continue
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
            out[table.name] = (len(rows), digest)
    write_intent.reset(token)
    return out


def _job_status(engine: sa.Engine, batch: str) -> str:
    token = write_intent.set(False)
    with engine.connect() as conn:
        status = conn.execute(sa.select(ImportJob.status).where(ImportJob.batch_id == batch)).scalar_one()
    write_intent.reset(token)
    return status.value


def _upload(client: PortalClient, data: bytes, batch: str) -> None:
    token = client.csrf_token("/plans/national")
    response = client.post("/plans/national/import", data={"csrf_token": token, "batch_id": batch,
                                                            "file": (io.BytesIO(data), "全国計画.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/plans/import/{batch}")


def _confirm(client: PortalClient, batch: str) -> None:
    assert client.post_form(f"/plans/import/{batch}/commit", token_from=f"/plans/import/{batch}").status_code == 302


def _portal(url: str, instance: Path) -> tuple:
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_PATH": str(instance),
                      "SEARCH_INDEX_AFTER_COMMIT": False})
    app.test_client_class = PortalClient
    return app, app.test_client()


@pytest.mark.slow
def test_an_import_killed_half_way_changes_nothing_and_shows_interrupted(tmp_path):
    """REL-05."""
    clock.freeze(None)  # the worker process runs on the real clock
    url = own_database(tmp_path, "rel05")
    upgrade_database(url)
    instance = tmp_path / "instance"
    app, client = _portal(url, instance)
    engine = app.extensions["pmo_db"].engine
    from pmo.seeding import run_seed

    with app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        officer = User(login_id="officer.rel05", display_name="取込 担当", email="rel05@example.jp",
                       role=Role.MINISTRY_OFFICER, password_hash=hash_password(TEST_PASSWORD),
                       must_change_password=False,
                       ministry_id=session.scalar(sa.text("SELECT id FROM ministries WHERE code = 'mic'")))
        session.add(officer)
        session.flush()
        enrol_known_secret(session, officer, TEST_TOTP_SECRET, [SECRET])  # an officer must use MFA
        session.commit()
        rows = list(imports.export_rows(session, actor_for(officer), None))[:ROWS]
    assert len(rows) == ROWS
    for i, r in enumerate(rows):
        r[3], r[4] = dt.date(2025, 4, 1) + dt.timedelta(days=i % 30), dt.date(2026, 3, 31)
    big = write_csv(imports.HEADERS, rows)
    baseline = write_csv(imports.HEADERS, [r[:3] + [dt.date(2025, 6, 1), dt.date(2026, 1, 31)] + r[5:]
                                           for r in rows[:3000]])
    log_in(client, app, "officer.rel05")
    _upload(client, baseline, "baseline")
    _confirm(client, "baseline")
    _upload(client, big, "big1")
    staged = instance / "uploads" / "plans-import-big1.json"
    assert staged.exists()
    before = _snapshot(engine)
    assert before["plans"][0] == 3000

    cookie = client.get_cookie("__Host-pmo_session")
    worker = subprocess.Popen([sys.executable, str(WORKER), url, str(instance), cookie.key, cookie.value, "big1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    with reaped(worker):
        half, said = None, []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break
            said.append(line)
            if line.startswith("HALF"):
                half = line.split()
                break
        assert half is not None, (said, worker.stderr.read()[-3000:])
        assert int(half[1]) < int(half[2]) == ROWS  # stopped with rows still to write
        # while the worker holds its transaction, the job is visibly running and nothing is committed
        assert _job_status(engine, "big1") == "running"
        assert _snapshot(engine) == before
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)
    assert worker.returncode == -signal.SIGKILL
    app.extensions["pmo_db"].engine.dispose()

    # restart the app: the data is as before the import
    app, client = _portal(url, instance)
    engine = app.extensions["pmo_db"].engine
    assert _snapshot(engine) == before
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    log_in(client, app, "officer.rel05")
    logged_in = _snapshot(engine)  # the login itself is recorded (session, audit, last login)
    status = client.get("/plans/import/big1/status.json").get_json()
    assert status["status"] == "running" and not status["finished"]  # the lease has not run out yet
    # once the heartbeat is older than the lease, the job is 中断, not stuck 処理中
    clock.freeze(clock.now() + imports.STALE_AFTER + dt.timedelta(seconds=5))
    page = client.get("/plans/import/big1").get_data(as_text=True)
    assert "状態: 中断" in page and "データは変更されていません" in page
    assert client.get("/plans/import/big1/status.json").get_json()["status"] == "interrupted"
    national = client.get("/plans/national").get_data(as_text=True)
    assert re.search(r"中断</td>", national)
    assert not staged.exists() and not staged.with_suffix(".beat").exists()  # rows and lease file
    assert _snapshot(engine) == logged_in
    # the confirm button no longer applies the stale preview
    client.post_form("/plans/import/big1/commit", token_from="/plans/import/big1")
    assert _snapshot(engine) == logged_in

    # importing the file again succeeds (it was never applied, so it is not a duplicate)
    clock.freeze(None)
    _upload(client, big, "big2")
    assert "同一ファイルは取込済みです" not in client.get("/plans/import/big2").get_data(as_text=True)
    _confirm(client, "big2")
    with app.extensions["pmo_db"].session(write=False) as session:
        job = session.scalar(sa.select(ImportJob).where(ImportJob.batch_id == "big2"))
        assert job.status is ImportStatus.DONE
        assert job.counts["applied"] == {"created": ROWS - 3000, "updated": 3000, "unchanged": 0}
        assert session.scalar(sa.select(sa.func.count()).select_from(Plan)) == ROWS
        interrupted = session.scalar(sa.select(ImportJob).where(ImportJob.batch_id == "big1"))
        assert interrupted.status is ImportStatus.INTERRUPTED
    client.get("/plans/import/big2")
    assert not list((instance / "uploads").glob("plans-import-*"))
    app.extensions["pmo_db"].engine.dispose()
