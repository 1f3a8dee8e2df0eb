"""REL-07 under REL-01's kind of load: a backup taken while writers keep committing is consistent with
its own manifest (the restore drill's row counts match), passes the integrity check, and the writers
see no error."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from pmo import create_app
from pmo.accounts.models import Role
from pmo.accounts.permissions import Actor
from pmo.audit import service as audit
from pmo.cli import upgrade_database
from pmo.ops import backup as ops
from tests.databases import own_database

WRITERS = 4


def test_a_backup_during_writes_restores_to_its_manifest(tmp_path):
    """REL-07 (and REL-08's check on the result)."""
    url = own_database(tmp_path, "rel07")
    upgrade_database(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "k" * 64})
    database = app.extensions["pmo_db"]
    engine = database.engine
    uploads = Path(app.instance_path) / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "a.bin").write_bytes(b"x" * 1000)
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0] * WRITERS

    def writer(n: int) -> None:
        actor = Actor(user_id=0, login_id=f"load{n}", role=Role.SYSTEM_ADMIN)
        try:
            while not stop.is_set():
                with database.session() as session:
                    audit.record(session, actor, "test.load", detail=f"{n}:{written[n]}")
                    session.commit()
                written[n] += 1
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        while sum(written) < 50 and not errors:
            stop.wait(0.05)
        results = [ops.create_backup(engine, uploads, tmp_path / "out", "test") for _ in range(2)]
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not errors, errors[:3]
    assert sum(written) > 50
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM audit_entries WHERE action = 'test.load'")).scalar_one()
    assert total == sum(written)
    for result in results:
        assert 0 < result.manifest["row_counts"]["audit_entries"] <= total
        ops.restore_backup(engine, uploads, result.path)
        assert ops.verify_counts(engine, result.manifest) == [], (result.manifest["row_counts"]["audit_entries"], ops.row_counts(engine)["audit_entries"], total)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()
