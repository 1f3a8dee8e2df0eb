"""Backup and restore on a real database of their own: manifest, restore drill, damaged archives refused
(REL-07, REL-08)."""

from __future__ import annotations

import json
import stat
import tarfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmo import create_app
from pmo.cli import upgrade_database
from pmo.ops import backup as ops
from pmo.paths import data_dir
from tests.databases import own_database


@pytest.fixture
def ops_app(tmp_path):
    url = own_database(tmp_path, "ops")
    upgrade_database(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "k" * 64})
    from pmo.seeding import run_seed

    with app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        session.commit()
    uploads = Path(app.instance_path) / "uploads"
    (uploads / "ab").mkdir(parents=True)
    (uploads / "ab" / "f1").write_bytes("報告書の中身".encode())
    yield app
    app.extensions["pmo_db"].engine.dispose()


def _count(app, table="bodies") -> int:
    with app.extensions["pmo_db"].engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_backup_writes_a_private_archive_with_a_manifest(ops_app, tmp_path):
    engine = ops_app.extensions["pmo_db"].engine
    result = ops.create_backup(engine, Path(ops_app.instance_path) / "uploads", tmp_path / "out", "test")
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    with tarfile.open(result.path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        names = tar.getnames()
    assert manifest["row_counts"]["bodies"] == _count(ops_app) == 1788 + 47
    from alembic.script import ScriptDirectory

    from pmo.cli import alembic_config

    assert [manifest["alembic_revision"]] == ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert "uploads/ab/f1" in manifest["files"] and "uploads/ab/f1" in names
    assert all(len(digest) == 64 for digest in manifest["files"].values())


def test_restore_drill_brings_back_data_and_files(ops_app, tmp_path):
    engine = ops_app.extensions["pmo_db"].engine
    uploads = Path(ops_app.instance_path) / "uploads"
    archive = ops.create_backup(engine, uploads, tmp_path / "out", "test").path
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM union_members"))
    (uploads / "ab" / "f1").unlink()
    assert _count(ops_app, "union_members") == 0

    manifest = ops.restore_backup(engine, uploads, archive)

    assert ops.verify_counts(engine, manifest) == []
    assert _count(ops_app, "union_members") == 1741
    assert (uploads / "ab" / "f1").read_bytes() == "報告書の中身".encode()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_archive_is_refused_and_current_data_untouched(ops_app, tmp_path, damage):
    engine = ops_app.extensions["pmo_db"].engine
    uploads = Path(ops_app.instance_path) / "uploads"
    archive = ops.create_backup(engine, uploads, tmp_path / "out", "test").path
    data = bytearray(archive.read_bytes())
    if damage == "truncate":
        archive.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[2048] ^= 0xFF  # inside the first member's content
        archive.write_bytes(bytes(data))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM union_members WHERE id IN (SELECT id FROM union_members LIMIT 10)"))
    before = _count(ops_app, "union_members")

    with pytest.raises(ops.BackupError) as excinfo:
        ops.restore_backup(engine, uploads, archive)

    assert any(word in str(excinfo.value) for word in ("壊れ", "チェックサム", "ありません"))
    assert _count(ops_app, "union_members") == before
    assert (uploads / "ab" / "f1").exists()


def test_cli_backup_and_restore(ops_app, tmp_path):
    runner = ops_app.test_cli_runner()
    result = runner.invoke(args=["backup", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    archive = next((tmp_path / "b").glob("pmo-backup-*.tar"))
    with ops_app.extensions["pmo_db"].engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM union_members"))
    result = runner.invoke(args=["restore", "--yes", str(archive)])
    assert result.exit_code == 0, result.output
    assert "復元しました" in result.output
    assert _count(ops_app, "union_members") == 1741

    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all")
    result = runner.invoke(args=["restore", "--yes", str(bad)])
    assert result.exit_code == 1
    assert "壊れています" in result.output


def test_healthz_reports_the_last_backup(ops_app, tmp_path):
    client = ops_app.test_client()
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["checks"]["database"] == "ok"
    assert body["checks"]["last_backup_age_hours"] is None
    ops_app.test_cli_runner().invoke(args=["backup", "--out", str(tmp_path / "b")])
    body = client.get("/healthz").get_json()
    assert body["checks"]["last_backup_age_hours"] == 0.0
    assert str(tmp_path) not in json.dumps(body)  # no paths or internals
