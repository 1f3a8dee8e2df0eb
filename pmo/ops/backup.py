"""Online backup into one archive with a manifest, and a restore that checks it before touching anything.

The archive (tar, mode 0600: it holds personal data) contains the database (SQLite online backup API,
or ``pg_dump -Fc``), the uploads folder, and ``manifest.json``: sha256 of every file, row counts per
table, the Alembic revision, the app version and the creation time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pmo.core import clock

MANIFEST = "manifest.json"
SQLITE_NAME = "database.sqlite3"
PG_NAME = "database.pgdump"


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message is Japanese and says why."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict[str, Any]
    seconds: float


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Count the rows of every table, for the manifest and the restore check."""
    inspector = sa.inspect(engine)
    counts = {}
    with engine.connect() as conn:
        for table in sorted(inspector.get_table_names()):
            counts[table] = conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
    return counts


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.DBAPIError:
            return None


def _pg_env(url: sa.URL) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    return args, env


def create_backup(engine: sa.Engine, uploads: Path, out_dir: Path, version: str) -> BackupResult:
    """Write a backup archive of the database and uploads while the portal keeps running."""
    started = clock.now()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.astimezone(clock.JST).strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        work = Path(tmp)
        counts = row_counts(engine)
        files: dict[str, str] = {}
        if engine.dialect.name == "sqlite":
            db_file = work / SQLITE_NAME
            source = sqlite3.connect(engine.url.database)
            target = sqlite3.connect(db_file)
            with target:
                source.backup(target)  # the online backup API: consistent while writers go on
            check = target.execute("PRAGMA integrity_check").fetchone()[0]
            counts = {t: target.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in counts}
            source.close()
            target.close()
            if check != "ok":
                raise BackupError(f"バックアップの整合性検査に失敗しました: {check}")
        else:
            db_file = work / PG_NAME
            args, env = _pg_env(engine.url)
            # Count the rows and dump from one exported snapshot, so the manifest describes exactly
            # what the dump holds while writers go on (REL-07); the snapshot lives as long as this
            # transaction stays open.
            with engine.connect() as conn, conn.execution_options(isolation_level="REPEATABLE READ").begin():
                snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
                counts = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in counts}
                result = subprocess.run(["pg_dump", "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(db_file),
                                         *args, engine.url.database], env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise BackupError(f"pg_dump が失敗しました: {result.stderr.strip()[:300]}")
        files[db_file.name] = _sha256(db_file)
        if uploads.is_dir():
            shutil.copytree(uploads, work / "uploads")
            for path in sorted((work / "uploads").rglob("*")):
                if path.is_file():
                    files[str(path.relative_to(work))] = _sha256(path)
        manifest = {
            "format": 1,
            "created_at": started.isoformat(),
            "app_version": version,
            "dialect": engine.dialect.name,
            "alembic_revision": _revision(engine),
            "row_counts": counts,
            "files": files,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        archive = out_dir / f"pmo-backup-{stamp}.tar"
        serial = 1
        while archive.exists():  # two backups within one second must not overwrite each other
            serial += 1
            archive = out_dir / f"pmo-backup-{stamp}-{serial}.tar"
        partial = archive.with_suffix(".tar.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            for path in sorted(work.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(work)), recursive=False)
        os.replace(partial, archive)
    seconds = (clock.now() - started).total_seconds()
    return BackupResult(archive, manifest, seconds)


def read_verified(archive: Path, into: Path) -> dict[str, Any]:
    """Unpack an archive into ``into`` and check every file against the manifest; raise BackupError if damaged."""
    try:
        with tarfile.open(archive, mode="r") as tar:
            for member in tar.getmembers():
                if not member.isfile() or member.name.startswith(("/", "..")) or ".." in Path(member.name).parts:
                    raise BackupError(f"バックアップに不正な項目があります: {member.name}")
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"バックアップファイルが壊れています（{type(exc).__name__}）。") from exc
    manifest_path = into / MANIFEST
    if not manifest_path.exists():
        raise BackupError("バックアップに manifest.json がありません。")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackupError("manifest.json が読めません。") from exc
    for name, digest in manifest.get("files", {}).items():
        path = into / name
        if not path.exists():
            raise BackupError(f"バックアップに {name} がありません。")
        if _sha256(path) != digest:
            raise BackupError(f"{name} のチェックサムが一致しません（ファイルが破損しています）。")
    return manifest


def restore_backup(engine: sa.Engine, uploads: Path, archive: Path) -> dict[str, Any]:
    """Restore a verified archive; a damaged archive is refused before the current data is touched."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = read_verified(archive, work)
        if manifest.get("dialect") != engine.dialect.name:
            raise BackupError(
                f"このバックアップは {manifest.get('dialect')} 用です（現在のデータベースは {engine.dialect.name}）。"
            )
        if engine.dialect.name == "sqlite":
            source = sqlite3.connect(work / SQLITE_NAME)
            if source.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError("バックアップ内のデータベースが壊れています。")
            engine.dispose()
            target = sqlite3.connect(engine.url.database, timeout=30)
            with target:
                source.backup(target)  # replaces the whole database in one step
            source.close()
            target.close()
        else:
            args, env = _pg_env(engine.url)
            result = subprocess.run(
                ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", *args,
                 "-d", engine.url.database, str(work / PG_NAME)],
                env=env, capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise BackupError(f"pg_restore が失敗しました（データは変更されていません）: {result.stderr.strip()[:300]}")
        restored_uploads = work / "uploads"
        if restored_uploads.is_dir() or uploads.exists():
            staging = uploads.with_name(uploads.name + ".restoring")
            shutil.rmtree(staging, ignore_errors=True)
            if restored_uploads.is_dir():
                shutil.copytree(restored_uploads, staging)
            else:
                staging.mkdir(parents=True)
            old = uploads.with_name(uploads.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if uploads.exists():
                os.replace(uploads, old)
            os.replace(staging, uploads)
            shutil.rmtree(old, ignore_errors=True)
    return manifest


def verify_counts(engine: sa.Engine, manifest: dict[str, Any]) -> list[str]:
    """Return the tables whose row counts differ from the manifest (empty when the restore is whole)."""
    counts = row_counts(engine)
    return [t for t, n in manifest["row_counts"].items() if counts.get(t) != n]


def last_backup_age(value: dict[str, Any] | None, now: dt.datetime) -> float | None:
    """Hours since the last successful backup recorded in the settings, or None if there was none."""
    if not value or not value.get("ok"):
        return None
    at = dt.datetime.fromisoformat(value["at"])
    return round((now - at).total_seconds() / 3600, 1)
