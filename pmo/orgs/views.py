"""Body list (filter by prefecture, kind, population; paged) and body page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request

from pmo.accounts.permissions import Permission
from pmo.db import get_session
from pmo.orgs import service
from pmo.orgs.models import BODY_KIND_LABELS, BodyKind
from pmo.web.auth import current_actor, require

bp = Blueprint("orgs", __name__, url_prefix="/bodies")


def _int_arg(name: str) -> int | None:
    import unicodedata

    raw = unicodedata.normalize("NFKC", request.args.get(name, "")).replace(",", "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


@bp.route("/")
@require(Permission.BODY_VIEW)
def index() -> Any:
    db = get_session()
    kind_raw = request.args.get("kind", "")
    kind = next((k for k in BodyKind if k.value == kind_raw), None)
    pref = request.args.get("prefecture", "")
    flt = service.BodyFilter(
        prefecture_code=pref if pref.isdigit() and len(pref) == 2 else None,
        kind=kind,
        population_min=_int_arg("population_min"),
        population_max=_int_arg("population_max"),
        text=(request.args.get("q") or "").strip()[:50] or None,
    )
    page = max(1, min(_int_arg("page") or 1, 10_000))
    sort = request.args.get("sort", "code")
    per_page = current_app.config["ITEMS_PER_PAGE"]
    rows, total = service.list_bodies(db, current_actor(), flt, sort=sort, page=page, per_page=per_page)
    return render_template(
        "orgs/index.html", bodies=rows, total=total, page=page, per_page=per_page, flt=flt, sort=sort,
        prefectures=service.prefectures(db), kinds=BODY_KIND_LABELS, population_class=service.population_class,
    )


@bp.route("/<code>")
@require(Permission.BODY_VIEW)
def show(code: str) -> Any:
    db = get_session()
    body = service.get_body(db, current_actor(), code)
    db.commit()
    return render_template("orgs/show.html", body=body, population_class=service.population_class)
