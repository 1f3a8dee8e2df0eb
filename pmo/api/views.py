"""The API base: the OpenAPI document, who am I, and bodies."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user

from pmo.accounts.permissions import Permission
from pmo.api.openapi import build_spec, document, query_param
from pmo.db import get_session
from pmo.orgs import service as orgs
from pmo.orgs.models import Body, BodyKind
from pmo.web.auth import current_actor, public, require

bp = Blueprint("api", __name__, url_prefix="/api/v1")

BODY_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"},
        "prefecture_code": {"type": "string"}, "population": {"type": ["integer", "null"]},
    },
}


def body_json(body: Body) -> dict[str, Any]:
    return {"code": body.code, "name": body.name, "kind": body.kind.value, "kind_label": body.kind.label,
            "prefecture_code": body.prefecture_code, "population": body.population}


@bp.route("/openapi.json")
@public
@document("このAPIのOpenAPI定義")
def openapi() -> Any:
    return jsonify(build_spec(current_app))


@bp.route("/me")
@require(None)
@document("認証中のユーザー", response={"type": "object"})
def me() -> Any:
    user = current_user.user
    return jsonify({
        "login_id": user.login_id, "display_name": user.display_name, "role": user.role.value,
        "body": body_json(user.body) if user.body else None,
        "ministry": user.ministry.name if user.ministry else None,
    })


@bp.route("/bodies")
@require(Permission.BODY_VIEW)
@document(
    "団体一覧（閲覧できる範囲）",
    params=[query_param("prefecture", "都道府県コード(2桁)"), query_param("kind", "団体区分"),
            query_param("page", "ページ番号", schema={"type": "integer", "minimum": 1})],
    response={"type": "object", "properties": {"total": {"type": "integer"}, "items": {"type": "array", "items": BODY_SCHEMA}}},
)
def bodies() -> Any:
    pref = request.args.get("prefecture", "")
    kind = next((k for k in BodyKind if k.value == request.args.get("kind")), None)
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10_000 else 1
    flt = orgs.BodyFilter(prefecture_code=pref if pref.isdigit() and len(pref) == 2 else None, kind=kind)
    rows, total = orgs.list_bodies(get_session(), current_actor(), flt, page=page, per_page=200)
    return jsonify({"total": total, "page": page, "items": [body_json(b) for b in rows]})


@bp.route("/bodies/<code>")
@require(Permission.BODY_VIEW)
@document("団体の詳細", response=BODY_SCHEMA)
def body(code: str) -> Any:
    db = get_session()
    found = orgs.get_body(db, current_actor(), code)
    db.commit()
    return jsonify(body_json(found))
