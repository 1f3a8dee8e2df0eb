"""``pmo faq add --question Q --answer A [--category C] [--publish]``."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from pmo.faq.models import CATEGORIES


@click.group("faq")
def faq_group() -> None:
    """FAQの登録。"""


@faq_group.command("add")
@click.option("--question", required=True, help="質問")
@click.option("--answer", required=True, help="回答（HTML可。許可したタグ以外は取り除きます）")
@click.option("--category", default="その他", type=click.Choice(CATEGORIES), show_default=True)
@click.option("--ministry", "ministry_code", default="mhlw", show_default=True, help="担当府省コード")
@click.option("--source", default="", help="出典（例：説明会資料6 スライド20）")
@click.option("--publish", is_flag=True, help="登録と同時に公開する")
@with_appcontext
def add(question: str, answer: str, category: str, ministry_code: str, source: str, publish: bool) -> None:
    """FAQを1件登録する。"""
    from sqlalchemy import select

    from pmo.accounts.models import Role
    from pmo.accounts.permissions import Actor
    from pmo.core.errors import ValidationFailed
    from pmo.faq import rules, service
    from pmo.orgs.models import Ministry
    from pmo.search import indexer
    from pmo.search.views import backend

    with current_app.extensions["pmo_db"].session() as session:
        ministry = session.scalar(select(Ministry).where(Ministry.code == ministry_code))
        if ministry is None:
            raise click.ClickException(f"府省コード「{ministry_code}」が見つかりません。")
        actor = Actor(user_id=0, login_id="cli", role=Role.MINISTRY_OFFICER, ministry_id=ministry.id)
        html = answer if "<" in answer else rules.text_to_html(answer)
        try:
            faq = service.create_faq(session, actor, service.FaqInput(question, html, category, source), publish=publish)
        except ValidationFailed as exc:
            for problem in exc.problems:
                click.echo(f"エラー: {problem.message}", err=True)
            sys.exit(1)
        session.commit()
        faq_id = faq.id
        indexer.drain(session, backend(current_app), retries=3)
    click.echo(f"FAQ {faq_id} を登録しました（{'公開' if publish else '下書き'}）。")
