"""`pmo backup` and `pmo restore`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from pmo import __version__
from pmo.config import upload_dir
from pmo.core import clock
from pmo.ops import backup as ops


def _uploads() -> Path:
    return upload_dir(current_app.config, current_app.instance_path)


def _record(ok: bool, detail: str, path: str | None = None) -> None:
    from pmo.audit import service as audit
    from pmo.settings.service import set_setting

    database = current_app.extensions["pmo_db"]
    with database.session() as session:
        set_setting(session, "last_backup" if ok else "last_backup_failure",
                    {"at": clock.now().isoformat(), "ok": ok, "detail": detail, "path": path})
        audit.record(session, None, "ops.backup", outcome="success" if ok else "failure", actor_login="cli",
                     detail=detail)
        session.commit()


@click.command("backup")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="保存先フォルダ（省略時はインスタンスフォルダの backups/）")
@with_appcontext
def backup(out_dir: Path | None) -> None:
    """データベースとアップロードファイルをオンラインでバックアップする。"""
    engine = current_app.extensions["pmo_db"].engine
    out_dir = out_dir or Path(current_app.instance_path) / "backups"
    try:
        result = ops.create_backup(engine, _uploads(), out_dir, __version__)
    except ops.BackupError as exc:
        _record(False, str(exc))
        click.echo(f"エラー: {exc}", err=True)
        sys.exit(1)
    total = sum(result.manifest["row_counts"].values())
    _record(True, f"{result.path.name} rows={total} seconds={result.seconds:.1f}", str(result.path))
    click.echo(f"バックアップを作成しました: {result.path}（{total:,}行、{result.seconds:.1f}秒）")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="確認せずに復元する")
@with_appcontext
def restore(archive: Path, yes: bool) -> None:
    """バックアップから復元する（破損したバックアップは現在のデータに触れずに拒否する）。"""
    from pmo.cli import upgrade_database

    if not yes:
        click.confirm("現在のデータを置き換えて復元します。よろしいですか？", abort=True)
    engine = current_app.extensions["pmo_db"].engine
    started = clock.now()
    try:
        manifest = ops.restore_backup(engine, _uploads(), archive)
    except ops.BackupError as exc:
        click.echo(f"エラー: {exc}", err=True)
        sys.exit(1)
    mismatched = ops.verify_counts(engine, manifest)
    if mismatched:
        click.echo(f"エラー: 復元後の行数がマニフェストと一致しません: {', '.join(mismatched)}", err=True)
        sys.exit(1)
    upgrade_database(current_app.config["DATABASE_URL"])  # an older backup meets newer code
    seconds = (clock.now() - started).total_seconds()
    click.echo(f"復元しました（作成日時 {manifest['created_at']}、リビジョン {manifest['alembic_revision']}、{seconds:.1f}秒）。")
