"""``pmo subsidy …``: load a base table, show a body's bases, compute a grant from JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from pmo.core.errors import DomainError, ValidationFailed


def _session() -> Any:
    return current_app.extensions["pmo_db"].session()


def _fail(exc: Exception) -> None:
    if isinstance(exc, ValidationFailed):
        for problem in exc.problems:
            click.echo(f"エラー: {problem}" if hasattr(problem, "row") else f"エラー: {problem.field}: {problem.message}",
                       err=True)
    else:
        click.echo(f"エラー: {getattr(exc, 'message', '') or exc}", err=True)
    sys.exit(1)


def _cli_actor() -> Any:
    from pmo.cli import _cli_actor as actor

    return actor(None)


@click.group("subsidy")
def subsidy() -> None:
    """補助金: 基準額表の登録、基準額の表示、交付額の計算。"""


@subsidy.command("load-base-table")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--illustrative", is_flag=True, help="例示用の表として登録する（画面に「例示」と表示）")
@with_appcontext
def load_base_table(file: Path, illustrative: bool) -> None:
    """基準額表（CSV: fiscal_year,body_kind,system,population,amount_thousand_yen）を登録する。"""
    from pmo.subsidy import service

    if not file.exists():
        click.echo(f"エラー: ファイル {file} がありません。", err=True)
        sys.exit(1)
    with _session() as session:
        try:
            text = service.decode_upload(file.read_bytes(), file.name)
            tables = service.load_base_table(session, _cli_actor(), text, file.name, illustrative=illustrative)
        except DomainError as exc:
            session.rollback()
            click.echo(f"{file.name} は登録しませんでした（表全体を受け付けません）。現在の基準額表はそのままです。", err=True)
            _fail(exc)
        session.commit()
        for table in tables:
            click.echo(f"{table.fiscal_year}年度の基準額表を登録しました（{len(table.rows)}行）。")


@subsidy.command("base")
@click.option("--body", "body_code", required=True, help="団体コード（6桁）")
@click.option("--fiscal-year", required=True, type=int, help="年度事業（2014, 2015, 2016）")
@click.option("--json", "as_json", is_flag=True, help="JSONで出力する")
@with_appcontext
def base(body_code: str, fiscal_year: int, as_json: bool) -> None:
    """団体の人口と、システム別・区分別の国庫補助基準額を表示する。"""
    from pmo.subsidy import queries, service

    with _session() as session:
        try:
            body = service.find_body(session, body_code)
            bases = service.body_bases(session, None, body, fiscal_year)
        except DomainError as exc:
            _fail(exc)
        data = queries.bases_json(bases)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{data['name']}（{data['body']}） 人口 {data['population']:,}人 {fiscal_year}年度事業"
               + ("  ※例示の基準額表" if data["illustrative"] else ""))
    for name, item in data["systems"].items():
        mark = "登録" if item["registered"] else "未登録"
        click.echo(f"  {name:<12} {item['base']:>14,}円  {mark}")
    for name, item in data["categories"].items():
        click.echo(f"  [{name}] 基準額 {item['base']:,}円")


@subsidy.command("grant")
@click.option("--input", "input_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSONで出力する")
@with_appcontext
def grant(input_file: Path, as_json: bool) -> None:
    """申請内容（JSON）から区分別の交付額を計算する。"""
    from pmo.subsidy import service

    if not input_file.exists():
        click.echo(f"エラー: ファイル {input_file} がありません。", err=True)
        sys.exit(1)
    try:
        data = json.loads(input_file.read_text(encoding="utf-8-sig"), parse_float=lambda s: float(s))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        click.echo(f"エラー: {input_file.name} はJSONとして読めません（{getattr(exc, 'lineno', '?')}行目付近）。", err=True)
        sys.exit(1)
    with _session() as session:
        try:
            result = service.grant_for_request(session, None, data)
        except DomainError as exc:
            _fail(exc)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for name, item in result["categories"].items():
        click.echo(f"{name}: 基準額 {item['base']:,}円 対象経費 {item['eligible']:,}円 "
                   f"交付額 {item['grant']:,}円 地方負担額 {item['local_share']:,}円")
