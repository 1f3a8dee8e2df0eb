"""The operator's entry point: ``pmo db upgrade``, ``pmo seed``, ``pmo demo``, ``pmo users …``, ``pmo serve``."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from pmo.config import upload_dir
from pmo.paths import data_dir


def _app_factory() -> Flask:
    from pmo import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_app_factory, add_default_commands=False, add_version_option=False)
def main() -> None:
    """デジタルPMO portal の運用コマンド。"""


def database() -> Any:
    return current_app.extensions["pmo_db"]


# --- db ----------------------------------------------------------------------------------------


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(data_dir("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option(
        "file_template", "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s"
    )
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@click.group("db")
def db_group() -> None:
    """データベースの作成・更新。"""


@db_group.command("upgrade")
@click.option("--revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """最新のスキーマまでマイグレーションを適用する。"""
    upgrade_database(current_app.config["DATABASE_URL"], revision)
    click.echo("データベースを更新しました。")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """適用済みのリビジョンを表示する。"""
    from alembic import command

    command.current(alembic_config(current_app.config["DATABASE_URL"]))


# --- seed and demo -----------------------------------------------------------------------------


@click.command("seed")
@with_appcontext
def seed() -> None:
    """全団体・広域連合・府省など、本番でも必要な基礎データを登録する（何度実行しても同じ結果）。"""
    from pmo.seeding import run_seed

    with database().session() as session:
        results = run_seed(session, data_dir("seed"))
        session.commit()
    for step, result in results.items():
        click.echo(f"{step}: {result}")


@click.command("demo")
@click.option("--password", envvar="PMO_DEMO_PASSWORD", default=None, help="デモ用パスワード（省略時は生成）")
@click.option("--totp-secret", envvar="PMO_DEMO_TOTP_SECRET", default=None,
              help="二要素認証が必須の役割のデモアカウントに、この秘密鍵（base32）の認証アプリを登録済みにする（負荷試験用）")
@with_appcontext
def demo(password: str | None, totp_secret: str | None) -> None:
    """デモ用のアカウントとデータを登録する（本番環境では実行できません）。"""
    from pmo.seeding import DemoContext, run_demo, run_seed

    if current_app.config["ENV"] == "production":
        raise click.ClickException("本番環境ではデモデータを登録できません。")
    password = password or secrets.token_urlsafe(9)
    demo_date = dt.date.fromisoformat(current_app.config["DEMO_DATE"])
    with database().session() as session:
        run_seed(session, data_dir("seed"))
        ctx = DemoContext(seed_dir=data_dir("seed"), password=password, demo_date=demo_date,
                          upload_dir=upload_dir(current_app.config, current_app.instance_path))
        run_demo(session, ctx)
        mfa_note = _demo_mfa(session, list(ctx.users.values()), totp_secret)
        session.commit()
        if session.get_bind().dialect.name == "postgresql":
            # Vacuum and statistics now, not whenever autovacuum gets round to the 600,000 new rows
            # (on a small machine it would do so while the first users work).
            from sqlalchemy import text

            with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        click.echo("デモアカウント（パスワードは全員共通）:")
        for user in ctx.users.values():
            click.echo(f"  {user.login_id:<16} {user.role.label}")
    click.echo(f"  パスワード: {password}")
    if mfa_note:
        click.echo(mfa_note)


def _demo_mfa(session: Any, users: list[Any], totp_secret: str | None) -> str | None:
    """Enrol the demo accounts that must use MFA with a given secret (benchmarks), or say what to expect."""
    from pmo.accounts import mfa, mfa_service
    from pmo.web.auth import mfa_settings

    settings = mfa_settings()
    needing = [u for u in users if mfa.mfa_required(u.role, True, settings.staff_too)]
    if totp_secret:
        for user in needing:
            mfa_service.enrol_known_secret(session, user, totp_secret.replace(" ", "").upper(), settings.keys)
        return f"  二要素認証: {', '.join(u.login_id for u in needing)} に指定の秘密鍵を登録しました。"
    if not settings.enforce:
        return "  二要素認証: この環境では無効です（PMO_MFA_ENFORCE=false。本番環境では起動できない設定です）。"
    return (f"  二要素認証: {', '.join(u.login_id for u in needing)} は初回ログイン時に認証アプリの登録が必要です"
            "（make run では PMO_MFA_ENFORCE=false で無効にしています）。")


# --- users -------------------------------------------------------------------------------------


@click.group("users")
def users_group() -> None:
    """アカウントの発行・無効化・一覧。"""


def _cli_actor(session: Any) -> Any:
    """The CLI acts as a system administrator (the operator at the console)."""
    from pmo.accounts.models import Role
    from pmo.accounts.permissions import Actor

    return Actor(user_id=0, login_id="cli", role=Role.SYSTEM_ADMIN)


@users_group.command("create")
@click.option("--login", "login_id", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--email", required=True)
@click.option("--role", type=click.Choice([r.value for r in __import__("pmo.accounts.models", fromlist=["Role"]).Role]), required=True)
@click.option("--body", "body_code", default=None, help="所属団体コード")
@click.option("--ministry", "ministry_code", default=None, help="所属府省コード (cas, mic, mhlw …)")
@with_appcontext
def users_create(login_id: str, display_name: str, email: str, role: str, body_code: str | None,
                 ministry_code: str | None) -> None:
    """アカウントを発行し、初期パスワードを一度だけ表示する。"""
    from pmo.accounts import service
    from pmo.accounts.models import Role
    from pmo.core.errors import ValidationFailed

    with database().session() as session:
        try:
            user, password = service.issue_account(
                session, _cli_actor(session),
                service.AccountInput(login_id, display_name, email, Role(role), body_code, ministry_code),
                current_app.config["INITIAL_PASSWORD_HOURS"],
            )
        except ValidationFailed as exc:
            for problem in exc.problems:
                click.echo(f"エラー: {problem.field}: {problem.message}", err=True)
            sys.exit(1)
        session.commit()
        click.echo(f"{user.login_id} を発行しました。初期パスワード（初回ログイン時に変更）: {password}")


def _user_by_login(session: Any, login_id: str) -> Any:
    """The account with this login ID, or a Japanese error naming it."""
    from sqlalchemy import select

    from pmo.accounts import service
    from pmo.accounts.models import User

    user = session.scalar(select(User).where(User.login_id == service.normalize_login_id(login_id)))
    if user is None:
        raise click.ClickException(f"アカウント {login_id} が見つかりません。")
    return user


@users_group.command("disable")
@click.argument("login_id")
@with_appcontext
def users_disable(login_id: str) -> None:
    """アカウントを無効にし、すべてのセッションを終了する。"""
    from pmo.accounts import service

    with database().session() as session:
        user = _user_by_login(session, login_id)
        service.disable_account(session, _cli_actor(session), user.id)
        session.commit()
    click.echo(f"{login_id} を無効にしました。")


@users_group.command("mfa-reset")
@click.argument("login_id")
@with_appcontext
def users_mfa_reset(login_id: str) -> None:
    """二要素認証をリセットし（スマートフォン紛失時など）、すべてのセッションを終了する。"""
    from pmo.accounts import mfa_service

    with database().session() as session:
        user = _user_by_login(session, login_id)
        mfa_service.reset(session, _cli_actor(session), user.id)
        session.commit()
    click.echo(f"{login_id} の二要素認証をリセットしました。次回ログイン時に再登録が必要です。")


@users_group.command("list")
@with_appcontext
def users_list() -> None:
    """アカウントの一覧を表示する。"""
    from pmo.accounts import service

    with database().session(write=False) as session:
        for user in service.list_users(session, _cli_actor(session)):
            where = user.body.name if user.body else (user.ministry.name if user.ministry else "")
            state = "有効" if user.is_active else "無効"
            click.echo(f"{user.login_id:<20} {user.role.value:<18} {state}  {where}  {user.display_name}")


# --- serve -------------------------------------------------------------------------------------


@click.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--workers", default=lambda: int(os.environ.get("PMO_WORKERS", "2")), type=int)
@click.option("--threads", default=lambda: int(os.environ.get("PMO_THREADS", "4")), type=int)
@click.option("--debug", is_flag=True, help="Flask の開発用サーバーで起動する（本番では使わない）")
def serve(host: str, port: int, workers: int, threads: int, debug: bool) -> None:
    """ポータルを起動する（gunicorn）。"""
    if debug:
        _app_factory().run(host=host, port=port, debug=True)
        return
    from gunicorn.app.base import BaseApplication

    import gunicorn

    gunicorn.SERVER = "pmo"  # no server version in the Server header (CFG-01)

    class Portal(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("accesslog", "-")
            self.cfg.set("timeout", 120)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1: one fixed path per user
                self.cfg.set("control_socket_disable", True)  # would clash between two portals on one host

        def load(self) -> Flask:
            return _app_factory()

    Portal().run()


def register_commands(app: Flask) -> None:
    """Add every command group to the app's CLI."""
    for command in (db_group, seed, demo, users_group, serve):
        app.cli.add_command(command)
    _register_domain_commands(app)


# Domains add their command groups here ("module:group").
DOMAIN_COMMANDS: list[str] = [
    "pmo.ops.cli:backup",
    "pmo.ops.cli:restore",
    "pmo.subsidy.cli:subsidy",
    "pmo.delays.cli:delays_command",
    "pmo.plans.cli:plans_group",
    "pmo.search.cli:search_group",
    "pmo.documents.cli:documents_group",
    "pmo.faq.cli:faq_group",
]


def _register_domain_commands(app: Flask) -> None:
    import importlib

    for step in DOMAIN_COMMANDS:
        module, name = step.split(":")
        app.cli.add_command(getattr(importlib.import_module(module), name))


for _command in (db_group, seed, demo, users_group, serve):
    main.add_command(_command)
