"""REL-05 beyond the screen: a ``pmo plans import`` SIGKILLed half-way leaves the database as it was,
its job turns 中断 when the lease runs out and its staged files are deleted; and an apply that runs
longer than the lease (on SQLite it holds the write lock, so no heartbeat reaches the job row) is not
shown as 中断 while it runs, from the screen or from the CLI.

Each test runs on its own database (SQLite file or PostgreSQL database) because the import runs in
another process or thread and must see committed data.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import threading
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

WORKER = Path(__file__).with_name("interrupted_cli_import_worker.py")
ROOT = Path(__file__).resolve().parents[2]
OFFICER = "officer.lease"


def _portal(url: str, instance: Path) -> tuple:
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_PATH": str(instance),
                      "SEARCH_INDEX_AFTER_COMMIT": False})
    app.test_client_class = PortalClient
    return app, app.test_client()


def _prepared(tmp_path: Path, suffix: str, rows: int) -> tuple[str, Path, bytes]:
    """A seeded database of its own with a national officer; a national CSV of ``rows`` dated rows."""
    url = own_database(tmp_path, suffix)
    upgrade_database(url)
    app, _ = _portal(url, tmp_path / "instance")
    from pmo.seeding import run_seed

    with app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        officer = User(login_id=OFFICER, display_name="取込 担当", email="lease@example.jp",
                       role=Role.MINISTRY_OFFICER, password_hash=hash_password(TEST_PASSWORD),
                       must_change_password=False,
                       ministry_id=session.scalar(sa.text("SELECT id FROM ministries WHERE code = 'mic'")))
        session.add(officer)
        session.flush()
        enrol_known_secret(session, officer, TEST_TOTP_SECRET, [SECRET])
        session.commit()
        found = list(imports.export_rows(session, actor_for(officer), None))[:rows]
    app.extensions["pmo_db"].engine.dispose()
    assert len(found) == rows
    for i, r in enumerate(found):
        r[3], r[4] = dt.date(2025, 4, 1) + dt.timedelta(days=i % 30), dt.date(2026, 3, 31)
    return url, tmp_path / "instance", write_csv(imports.HEADERS, found)


def _read(engine: sa.Engine, stmt):  # type: ignore[no-untyped-def]
    token = write_intent.set(False)  # a plain BEGIN: reading must not wait for the importer's write lock
    try:
        with engine.connect() as conn:
            return conn.execute(stmt).all()
    finally:
        write_intent.reset(token)


def _snapshot(engine: sa.Engine) -> dict[str, list]:
    return {t.name: _read(engine, sa.select(t).order_by(*t.primary_key.columns))
            for t in Base.metadata.sorted_tables if t.name not in {"import_jobs", "user_sessions"}}


def _worker(url: str, instance: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PMO_DATABASE_URL": url, "PMO_INSTANCE_PATH": str(instance),
           "PMO_SECRET_KEY": SECRET, "PMO_SEARCH_INDEX_AFTER_COMMIT": "false"}
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _wait_for(worker: subprocess.Popen, prefix: str) -> list[str]:
    said = []
    while True:
        line = worker.stdout.readline()
        if not line:
            raise AssertionError((said, worker.stderr.read()[-3000:]))
        said.append(line)
        if line.startswith(prefix):
            return line.split()


def _staged(instance: Path) -> list[Path]:
    return sorted((instance / "uploads").glob("plans-import-*"))


@pytest.mark.slow
def test_a_cli_import_killed_half_way_changes_nothing_and_its_staged_file_is_deleted(tmp_path):
    """REL-05 for ``pmo plans import``."""
    clock.freeze(None)  # the worker runs on the real clock
    rows = 12_000  # the apply reports per 5,000 rows: half-way is after the second chunk
    url, instance, data = _prepared(tmp_path, "rel05cli", rows)
    path = tmp_path / "全国計画.csv"
    path.write_bytes(data)
    app, client = _portal(url, instance)
    engine = app.extensions["pmo_db"].engine
    before = _snapshot(engine)

    worker = _worker(url, instance, "half", str(path))
    with reaped(worker):
        half = _wait_for(worker, "HALF")
        assert int(half[1]) < int(half[2]) == rows
        staged = _staged(instance)
        assert [p.suffix for p in staged] == [".beat", ".json"]  # the staged rows and the lease's beat
        batch = staged[1].name.removeprefix("plans-import-").removesuffix(".json")
        # the CLI's job is visible while it applies; nothing of the apply is committed
        assert _read(engine, sa.select(ImportJob.status, ImportJob.phase).where(ImportJob.batch_id == batch)) \
            == [(ImportStatus.RUNNING, "apply")]
        assert _snapshot(engine) == before
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)
    assert worker.returncode == -signal.SIGKILL
    engine.dispose()

    app, client = _portal(url, instance)
    engine = app.extensions["pmo_db"].engine
    assert _snapshot(engine) == before
    log_in(client, app, OFFICER)
    assert client.get(f"/plans/import/{batch}/status.json").get_json()["status"] == "running"  # lease not out yet
    assert len(_staged(instance)) == 2
    # the web cleanup covers the CLI's job: after the lease it is 中断 and its files are gone
    clock.freeze(clock.now() + imports.STALE_AFTER + dt.timedelta(seconds=5))
    page = client.get(f"/plans/import/{batch}").get_data(as_text=True)
    assert "状態: 中断" in page and "データは変更されていません" in page
    assert _staged(instance) == []
    assert "中断</td>" in client.get("/plans/national").get_data(as_text=True)

    # the same file imported again from the console succeeds and leaves no staged file
    clock.freeze(None)
    result = app.test_cli_runner().invoke(args=["plans", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert f"新規{rows}件" in result.output
    assert _read(engine, sa.select(sa.func.count()).select_from(Plan)) == [(rows,)]
    assert _staged(instance) == []
    engine.dispose()


def test_the_cli_sweeps_what_earlier_killed_imports_left(tmp_path, monkeypatch):
    """Staged files of jobs past their lease, of finished jobs and without any job row are deleted by
    the next ``pmo plans import``; a preview waiting for its confirmation and a fresh file are kept."""
    clock.freeze(None)
    url, instance, data = _prepared(tmp_path, "sweep", 30)
    app, _ = _portal(url, instance)
    storage = instance / "uploads"
    storage.mkdir(parents=True)
    now = clock.now()
    old = now - imports.STALE_AFTER - dt.timedelta(minutes=1)
    with app.extensions["pmo_db"].session() as session:
        for batch, status, beat in [("dead", ImportStatus.RUNNING, old), ("alive", ImportStatus.RUNNING, now),
                                    ("waiting", ImportStatus.PREVIEWED, old), ("done", ImportStatus.DONE, old)]:
            session.add(ImportJob(batch_id=batch, kind="plans", filename="f.csv", sha256="0" * 64, status=status,
                                  phase="apply", national=True, created_dt=old, heartbeat_dt=beat,
                                  stored_path=f"plans-import-{batch}.json"))
        session.commit()
    for batch in ("dead", "alive", "waiting", "done", "nojob", "justnow"):
        (storage / f"plans-import-{batch}.json").write_text("[]", encoding="utf-8")
    (storage / "plans-import-dead.beat").write_text(old.isoformat(), encoding="ascii")
    stale_time = time.time() - imports.STALE_AFTER.total_seconds() - 60
    os.utime(storage / "plans-import-nojob.json", (stale_time, stale_time))
    path = tmp_path / "plans.csv"
    path.write_bytes(data)

    result = app.test_cli_runner().invoke(args=["plans", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in storage.iterdir()) == [
        "plans-import-alive.json", "plans-import-justnow.json", "plans-import-waiting.json"]
    status = dict(_read(app.extensions["pmo_db"].engine, sa.select(ImportJob.batch_id, ImportJob.status)))
    assert status["dead"] is ImportStatus.INTERRUPTED and status["alive"] is ImportStatus.RUNNING
    app.extensions["pmo_db"].engine.dispose()


def _poll_while(running, client: PortalClient, engine: sa.Engine, batch: str, started: float) -> list[tuple]:
    """Status of the job (via the page's JSON) and the age of its row heartbeat, twice a second."""
    seen = []
    while running():
        status = client.get(f"/plans/import/{batch}/status.json").get_json()["status"]
        beat = _read(engine, sa.select(ImportJob.heartbeat_dt).where(ImportJob.batch_id == batch))[0][0]
        beat = beat if beat.tzinfo else beat.replace(tzinfo=dt.UTC)
        seen.append((time.monotonic() - started, status, (clock.now() - beat).total_seconds()))
        time.sleep(0.4)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("channel", ["web", "cli"])
def test_an_apply_longer_than_the_lease_is_not_shown_interrupted(tmp_path, monkeypatch, channel):
    """Lease 2 s, apply 5 s: polled throughout, the job is 処理中 until it is 完了."""
    clock.freeze(None)
    lease, pause = 2.0, 5.0
    monkeypatch.setattr(imports, "STALE_AFTER", dt.timedelta(seconds=lease))
    url, instance, data = _prepared(tmp_path, f"lease{channel}", 3000)
    app, viewer = _portal(url, instance)
    engine = app.extensions["pmo_db"].engine
    log_in(viewer, app, OFFICER)

    if channel == "web":
        client = app.test_client()
        log_in(client, app, OFFICER)
        token = client.csrf_token("/plans/national")
        assert client.post("/plans/national/import", data={"csrf_token": token, "batch_id": "slowweb",
                                                            "file": (io.BytesIO(data), "全国計画.csv")},
                           content_type="multipart/form-data").status_code == 302
        batch = "slowweb"
        original_insert = imports.bulk_insert
        slept = threading.Event()

        def slow_insert(*args, **kwargs):  # type: ignore[no-untyped-def]
            if not slept.is_set():
                slept.set()
                time.sleep(pause)
            return original_insert(*args, **kwargs)

        monkeypatch.setattr(imports, "bulk_insert", slow_insert)
        token = client.csrf_token(f"/plans/import/{batch}")
        answers = []
        confirm = threading.Thread(target=lambda: answers.append(
            client.post(f"/plans/import/{batch}/commit", data={"csrf_token": token}).status_code))
        started = time.monotonic()
        confirm.start()
        assert slept.wait(30)
        seen = _poll_while(confirm.is_alive, viewer, engine, batch, started)
        confirm.join()
        assert answers == [302]
    else:
        path = tmp_path / "全国計画.csv"
        path.write_bytes(data)
        worker = _worker(url, instance, "slow", str(path), str(lease), str(pause))
        with reaped(worker):
            _wait_for(worker, "SLOW")
            started = time.monotonic()
            batch = next(p for p in _staged(instance) if p.suffix == ".json").name[len("plans-import-"):-5]
            seen = _poll_while(lambda: worker.poll() is None, viewer, engine, batch, started)
            assert worker.wait(60) == 0, worker.stderr.read()[-3000:]

    running = [s for s in seen if s[1] == "running"]
    # never 中断: 処理中 until it is 完了 (the worker process may still be exiting after its commit)
    assert running and [s[1] for s in seen] == ["running"] * len(running) + ["done"] * (len(seen) - len(running)), seen
    assert running[-1][0] > 2 * lease  # watched well past the lease
    if engine.dialect.name == "sqlite":
        # the job row's heartbeat went stale (the write lock): the beat file alone kept the job alive
        assert max(s[2] for s in running) > lease, seen
    else:
        # PostgreSQL: the row's heartbeat stays fresh, so a server without the upload folder agrees
        assert max(s[2] for s in running) < lease, seen
    assert viewer.get(f"/plans/import/{batch}/status.json").get_json()["status"] == "done"
    assert _read(engine, sa.select(sa.func.count()).select_from(Plan)) == [(3000,)]
    assert _staged(instance) == []
    engine.dispose()
