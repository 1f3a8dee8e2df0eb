"""``pmo search QUERY``, ``pmo search index`` (drain the queue), ``pmo search rebuild``, ``pmo search status``."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import with_appcontext

from pmo.search import indexer, service


class _SearchGroup(click.Group):
    """A group whose unknown first word is a query: ``pmo search 介護保険``."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "query", self.commands["query"], args
        return super().resolve_command(ctx, args)


@click.group("search", cls=_SearchGroup)
def search_group() -> None:
    """全文検索：検索、索引の更新・再構築。"""


def _db():
    return current_app.extensions["pmo_db"]


def _backend():
    from pmo.search.views import backend

    return backend(current_app)


@search_group.command("query")
@click.argument("words", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="JSONで出力する")
@click.option("--kind", default=None, help="document / faq / inquiry / procedure")
@with_appcontext
def query(words: tuple[str, ...], as_json: bool, kind: str | None) -> None:
    """検索する（コマンドはシステム管理者として、府省向けを含む公開中の情報を検索）。"""
    from pmo.accounts.models import Role
    from pmo.accounts.permissions import Actor
    from pmo.search.views import catch_up, results_json

    catch_up(current_app)  # index what is still queued (or build a missing index) first
    actor = Actor(user_id=0, login_id="cli", role=Role.SYSTEM_ADMIN)
    with _db().session(write=False) as session:
        results = service.search(session, actor, _backend(), " ".join(words), kind=kind, per_page=20)
        session.commit()
    if as_json:
        click.echo(json.dumps(results_json(results), ensure_ascii=False, indent=2))
        return
    if results.degraded:
        raise click.ClickException(results.message or "検索索引を利用できません。")
    click.echo(f"{results.total}件")
    for hit in results.hits:
        click.echo(f"[{service.KIND_LABELS.get(hit.kind, hit.kind)}] {hit.title}  {hit.url}")


@search_group.command("index")
@click.option("--retries", default=5, show_default=True, help="索引が他の処理に使われているときの再試行回数")
@click.option("--watch", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
              help="終了せず、この秒数ごとにキューを反映し続ける（複数台構成でただ1つ動かす索引担当プロセス）")
@with_appcontext
def index(retries: int, watch: float | None) -> None:
    """キューに溜まった更新を索引に反映する。"""
    if watch is not None:
        _watch(watch, retries)
        return
    with _db().session() as session:
        report = indexer.drain(session, _backend(), retries=retries)
    if report.busy:
        raise click.ClickException("検索索引を他の処理が更新中です。しばらくしてから再実行してください。")
    click.echo(f"反映 {report.indexed}件、削除 {report.deleted}件（キュー {report.rows}行）")


def _watch(interval: float, retries: int) -> None:
    """The deployment's one indexer: drain the queue every ``interval`` seconds until SIGTERM/SIGINT.

    The app servers then run with PMO_SEARCH_INDEX_AFTER_COMMIT=false, so this process is the only
    writer of the index (Whoosh allows one); a second ``--watch`` refuses to start.
    """
    import logging
    import signal
    import threading

    log = logging.getLogger("pmo.search.indexer")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    backend = _backend()
    try:
        with indexer.single_indexer(_db().engine, backend.index_root) as held:
            click.echo(f"索引担当プロセスを開始しました（{interval:g}秒ごと）。", err=True)
            while not stop.is_set():
                if not held():  # exit; the service manager starts it again and it takes the lock anew
                    raise click.ClickException("索引担当のロックを失いました（データベースの再起動など）。終了します。")
                try:
                    with _db().session() as session:
                        if backend.status().get("state") == "missing":  # first start, or deleted
                            indexer.rebuild(session, backend)
                        report = indexer.drain(session, backend, retries=retries)
                    if report.rows:
                        log.info("search index: %d indexed, %d deleted (%d queue rows)",
                                 report.indexed, report.deleted, report.rows)
                except Exception:  # the database or the index may come back: keep the process alive
                    log.exception("search indexing failed; retrying")
                stop.wait(interval)
    except indexer.IndexerRunning as exc:
        raise click.ClickException("別の索引担当プロセスが既に動いています（索引の書き込みは1プロセスだけです）。") from exc
    click.echo("索引担当プロセスを終了しました。", err=True)


@search_group.command("rebuild")
@with_appcontext
def rebuild() -> None:
    """データベースから索引を作り直し、完成後に切り替える（検索は止まりません）。"""
    with _db().session() as session:
        report = indexer.rebuild(session, _backend())
    click.echo(f"索引を再構築しました: {report.doc_count}件（{report.seconds:.1f}秒）")


@search_group.command("status")
@with_appcontext
def status() -> None:
    """索引の状態とキューの件数を表示する。"""
    with _db().session(write=False) as session:
        click.echo(json.dumps(service.status(session, _backend()), ensure_ascii=False, default=str))
