"""``pmo documents add PATH --title T [--field 分野] [--ministry 府省] [--publish]``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from pmo.config import upload_dir


@click.group("documents")
def documents_group() -> None:
    """文書の登録。"""


@documents_group.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="タイトル")
@click.option("--field", "field_label", default="共通", help="分野（生活保護、障害者福祉、…、共通）")
@click.option("--ministry", "ministry_name", default="厚生労働省", help="府省（名称・略称・コード）")
@click.option("--summary", default="", help="概要")
@click.option("--publish", is_flag=True, help="登録と同時に公開する")
@with_appcontext
def add(path: Path, title: str, field_label: str, ministry_name: str, summary: str, publish: bool) -> None:
    """ファイルを文書として登録する（内容で形式を確認します）。"""
    from sqlalchemy import or_, select

    from pmo.accounts.models import Role
    from pmo.accounts.permissions import Actor
    from pmo.core.errors import ValidationFailed
    from pmo.documents import service
    from pmo.documents.models import FIELD_BY_LABEL
    from pmo.documents.storage import FileStore
    from pmo.orgs.models import Ministry
    from pmo.search import indexer
    from pmo.search.views import backend

    field = FIELD_BY_LABEL.get(field_label)
    if field is None:
        raise click.ClickException(f"分野「{field_label}」はありません。選べる分野: {'、'.join(FIELD_BY_LABEL)}")
    db = current_app.extensions["pmo_db"]
    with db.session() as session:
        ministry = session.scalar(select(Ministry).where(or_(Ministry.name == ministry_name, Ministry.short_name == ministry_name,
                                                             Ministry.code == ministry_name)))
        if ministry is None:
            raise click.ClickException(f"府省「{ministry_name}」が見つかりません。")
        actor = Actor(user_id=0, login_id="cli", role=Role.MINISTRY_OFFICER, ministry_id=ministry.id)
        store = FileStore(upload_dir(current_app.config, current_app.instance_path))
        try:
            doc = service.create_document(session, actor, service.DocumentInput(title=title, summary=summary, field=field),
                                          service.Upload(path.read_bytes(), path.name), store)
            if publish:
                service.publish_document(session, actor, doc.id)
        except ValidationFailed as exc:
            for problem in exc.problems:
                click.echo(f"エラー: {problem.message}", err=True)
            sys.exit(1)
        session.commit()
        doc_id, state = doc.id, ("公開" if publish else "下書き")
        indexer.drain(session, backend(current_app), retries=3)
    click.echo(f"文書 {doc_id} を登録しました（{state}）。")
