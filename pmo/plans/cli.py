"""``pmo plans import|export|close-month``: the plan round-trip and the monthly close from the console."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from pmo.config import upload_dir


def _actor(session, login_id: str | None):  # type: ignore[no-untyped-def]
    """Act as the named user (their scope applies), or as a national officer at the console."""
    from sqlalchemy import select

    from pmo.accounts.models import Role, User
    from pmo.accounts.permissions import Actor
    from pmo.accounts.service import actor_for

    if login_id:
        user = session.scalar(select(User).where(User.login_id == login_id))
        if user is None or not user.is_active:
            raise click.ClickException(f"アカウント {login_id} が見つかりません。")
        return actor_for(user)
    return Actor(user_id=0, login_id="cli", role=Role.MINISTRY_OFFICER, ministry_id=0)


def _db():  # type: ignore[no-untyped-def]
    return current_app.extensions["pmo_db"]


@click.group("plans")
def plans_group() -> None:
    """計画・実績の一括取込・出力と月次締め。"""


@plans_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "login_id", default=None, help="このアカウントの権限で取り込む（省略時は全国）")
@with_appcontext
def import_command(file: Path, login_id: str | None) -> None:
    """FILE（.xlsx または .csv）の計画・実績を取り込む。誤りが1件でもあれば何も変更せず終了コード1。"""
    # Each step commits the job like the screen does (処理中 with a heartbeat, then the apply in one
    # transaction), so an import killed half-way leaves a job that turns 中断 when its lease runs out
    # and staged rows that the next sweep (this command, the national page) deletes (REL-05).
    from pmo.audit import service as audit
    from pmo.core import clock
    from pmo.core.files import UploadRejected
    from pmo.plans import imports, locks
    from pmo.plans.models import ImportStatus

    data = file.read_bytes()
    storage = upload_dir(current_app.config, current_app.instance_path)
    database = _db()
    with database.session() as session:
        actor = _actor(session, login_id)
        imports.sweep_staged(session, storage)  # what earlier imports killed half-way left behind
        session.commit()
        try:
            job = imports.start_job(session, actor, data, file.name, national=True)
        except UploadRejected as exc:
            click.echo(f"エラー: {exc.message}", err=True)
            sys.exit(1)
        session.commit()
        token = audit.current_context.set(audit.RequestContext(channel="import", batch_id=job.batch_id))
        try:
            if job.message:
                click.echo(f"注意: {job.message}", err=True)
            imports.validate_job(session, actor, job, data, storage)
            session.commit()
            if job.status is ImportStatus.REJECTED:
                click.echo(f"{len(job.errors or [])}件の誤りがあるため、何も取り込みませんでした。", err=True)
                click.echo("シート\t行\t列\t値\tエラー内容", err=True)
                for sheet, row, column, value, message in job.errors or []:
                    click.echo(f"{sheet or ''}\t{row or ''}\t{column or ''}\t{value or ''}\t{message}", err=True)
                sys.exit(1)
            job.status, job.phase, job.heartbeat_dt, job.processed_rows = ImportStatus.RUNNING, "apply", clock.now(), 0
            session.commit()
            beat_row = imports.row_beat(database.session, job.id) if database.writes_beside else None
            try:
                with imports.apply_heartbeat(job, storage, beat_row):
                    locks.wait_for_other_imports(session)  # REL-06
                    counts = imports.commit_job(session, actor, job, storage)
                    session.commit()
            except BaseException:
                session.rollback()
                job.status, job.message = ImportStatus.FAILED, "取込に失敗しました。データは変更されていません。"
                job.finished_dt = clock.now()
                session.commit()
                raise
            finally:
                imports.discard_staged(storage, job)
        finally:
            audit.current_context.reset(token)
    click.echo(f"取り込みました: 新規{counts['created']}件、更新{counts['updated']}件、変更なし{counts['unchanged']}件"
               f"（取込番号 {job.batch_id}）")


@plans_group.command("export")
@click.option("--body", "body_code", default=None, help="団体コード")
@click.option("--all", "all_bodies", is_flag=True, help="全団体")
@click.option("--encoding", type=click.Choice(["utf-8", "cp932"]), default="utf-8", help="CSVの文字コード")
@click.option("--user", "login_id", default=None, help="このアカウントの権限で出力する")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export_command(body_code: str | None, all_bodies: bool, encoding: str, login_id: str | None, file: Path) -> None:
    """計画・実績を FILE（.xlsx または .csv）に出力する（--body CODE または --all）。"""
    from pmo.plans import imports

    if bool(body_code) == all_bodies:
        raise click.UsageError("--body CODE か --all のどちらか一方を指定してください。")
    suffix = file.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise click.UsageError("出力ファイルの拡張子は .xlsx か .csv にしてください。")
    fmt = "xlsx" if suffix == ".xlsx" else ("cp932" if encoding == "cp932" else "csv")
    with _db().session(write=False) as session:
        data = imports.export_file(session, _actor(session, login_id), body_code, fmt)
        session.commit()
    file.write_bytes(data)
    click.echo(f"{file} に出力しました（{len(data):,}バイト）。")


@plans_group.command("close-month")
@click.argument("month")
@with_appcontext
def close_month_command(month: str) -> None:
    """MONTH（例 2015-11、H27.11）の月末時点の状態を凍結する（月次締め）。"""
    from pmo.core.dates import DateInputError, parse_date_input
    from pmo.core.errors import ValidationFailed
    from pmo.plans import service

    try:
        parsed = parse_date_input(month)
    except DateInputError as exc:
        raise click.ClickException(exc.message) from None
    if parsed is None:
        raise click.ClickException("月を指定してください。")
    with _db().session() as session:
        try:
            snap = service.close_month(session, _actor(session, None), parsed.start())
        except ValidationFailed as exc:
            raise click.ClickException("；".join(p.message for p in exc.problems)) from None
        session.commit()
        click.echo(f"{snap.month:%Y-%m} を締めました（{snap.row_count}行）。")
