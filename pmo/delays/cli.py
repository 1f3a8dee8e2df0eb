"""``pmo delays --as-of YYYY-MM-DD [--body CODE] [--json]``: the delay signals on a date, one per line."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from pmo.core import clock
from pmo.core.errors import DomainError, ValidationFailed
from pmo.delays import service
from pmo.delays.rules import SEVERITY_LABELS, SIGNAL_LABELS, Severity, SignalKind


def _console_actor():  # type: ignore[no-untyped-def]
    """The operator at the console reads the national state (as a ministry officer would)."""
    from pmo.accounts.models import Role
    from pmo.accounts.permissions import Actor

    return Actor(user_id=0, login_id="cli", role=Role.MINISTRY_OFFICER, ministry_id=0)


@click.command("delays")
@click.option("--as-of", "as_of", default=None, help="基準日（YYYY-MM-DD、省略時は今日）")
@click.option("--body", "body_code", default=None, help="団体コード（省略時は全団体）")
@click.option("--json", "as_json", is_flag=True, help="JSONで出力する")
@with_appcontext
def delays_command(as_of: str | None, body_code: str | None, as_json: bool) -> None:
    """基準日時点の遅延の兆候を一覧表示する（団体コード・サブタスク・兆候・日数・重要度）。"""
    try:
        day = service.parse_as_of(as_of, clock.today(), field="--as-of")
    except ValidationFailed as exc:
        raise click.BadParameter(exc.problems[0].message, param_hint="--as-of") from None
    with current_app.extensions["pmo_db"].session(write=False) as session:
        try:
            state = service.delay_state(session, _console_actor(), day, body_code=body_code)
        except DomainError as exc:
            session.rollback()
            raise click.ClickException(f"団体コード {body_code}: {exc.message}") from None
        items = service.signal_items(state)
        session.rollback()
    if as_json:
        click.echo(json.dumps({"as_of": day.isoformat(), "count": len(items), "items": items}, ensure_ascii=False))
        return
    click.echo(f"基準日 {day.isoformat()}：{len(items)}件")
    for item in items:
        days = "" if item["days"] is None else f"{item['days']}日"
        click.echo(
            f"{item['body_code']}\t{item['subtask']}\t{item['signal']}\t{days}\t{item['severity']}\t"
            f"{SIGNAL_LABELS[SignalKind(item['signal'])]}・{SEVERITY_LABELS[Severity.from_code(item['severity'])]}"
        )
