"""デジタルPMO portal: the application factory."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from pmo.paths import data_dir

__version__ = "0.1.0"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the portal: settings, database, security, blueprints, CLI."""
    # An explicit setting (tests, embedding) wins over the environment.
    instance_path = (config or {}).get("INSTANCE_PATH") or os.environ.get("PMO_INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        instance_relative_config=True,
        template_folder=str(data_dir("templates")),
        static_folder=str(data_dir("static")),
    )
    from pmo.config import load_config

    overrides = dict(config or {})
    bind = overrides.pop("DB_BIND", None)
    load_config(app.config, Path(app.instance_path), overrides)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    _configure_logging(app)

    if app.config.get("TRUSTED_PROXIES"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    from pmo import db
    from pmo.extensions import csrf
    from pmo.web import auth, errors, filters, security
    from pmo.web import quotas, scanning

    database = db.init_app(app, bind=bind)
    _check_demo_data(app, database)
    security.init_app(app)
    scanning.init_app(app)
    auth.init_app(app)
    quotas.init_app(app)
    csrf.init_app(app)
    filters.init_app(app)
    errors.register_error_handlers(app)
    _register_blueprints(app, csrf)
    _register_context(app)

    from pmo.cli import register_commands

    register_commands(app)
    return app


def _check_demo_data(app: Flask, database: Any) -> None:
    """Show the demo banner on a demo database; refuse to serve demo data in production (CFG-04)."""
    from sqlalchemy.exc import SQLAlchemyError

    from pmo.config import ConfigError
    from pmo.settings.service import get_setting

    try:
        with database.session(write=False) as session:
            demo = bool(get_setting(session, "demo", False))
    except SQLAlchemyError:  # not migrated yet
        return
    if demo:
        if app.config["ENV"] == "production":
            raise ConfigError("the database holds demo data; production refuses to start on it")
        app.config["DEMO"] = True


def _register_blueprints(app: Flask, csrf: Any) -> None:
    from pmo.accounts.views import bp as accounts_bp
    from pmo.api.views import bp as api_bp
    from pmo.audit.views import bp as audit_bp
    from pmo.home.views import bp as home_bp
    from pmo.ops import views as ops_views
    from pmo.orgs.views import bp as orgs_bp
    from pmo.catalog.views import bp as catalog_bp
    from pmo.delays.views import api_bp as delays_api_bp, bp as delays_bp
    from pmo.plans.api import bp as plans_api_bp
    from pmo.plans.views import bp as plans_bp
    from pmo.reports.views import api_bp as reports_api_bp, bp as reports_bp
    from pmo.subsidy.views import api_bp as subsidy_api_bp
    from pmo.subsidy.views import bp as subsidy_bp

    from pmo.documents.views import bp as documents_bp
    from pmo.faq.views import bp as faq_bp
    from pmo.procedures.views import bp as procedures_bp
    from pmo.search.views import api_bp as search_api_bp
    from pmo.search.views import bp as search_bp
    from pmo.search.views import drain_after_request

    ops_views.init_app(app)
    blueprints = (home_bp, accounts_bp, orgs_bp, audit_bp, ops_views.bp, catalog_bp, plans_bp, delays_bp,
                  reports_bp, subsidy_bp, documents_bp, faq_bp, procedures_bp, search_bp)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    # The API authenticates with Bearer tokens only (no cookies), so CSRF does not apply to it.
    for blueprint in (api_bp, plans_api_bp, subsidy_api_bp, delays_api_bp, reports_api_bp, search_api_bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
    drain_after_request(app)


def _register_context(app: Flask) -> None:
    from flask_login import current_user

    from pmo.accounts.permissions import Permission, can
    from pmo.web.nav import navigation

    @app.context_processor
    def _inject() -> dict[str, Any]:
        actor = current_user.actor if getattr(current_user, "is_authenticated", False) else None
        return {
            "actor": actor,
            "Permission": Permission,
            "can": lambda perm, **kw: can(actor, perm, **kw),
            "nav": navigation(actor) if actor else [],
            "demo_mode": app.config.get("DEMO"),
        }


def _configure_logging(app: Flask) -> None:
    from pmo.web.logs import configure

    configure(app.config.get("LOG_LEVEL", "INFO"))
