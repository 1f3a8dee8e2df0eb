"""JSON API of plans: GET/PUT /api/v1/bodies/{code}/plans with per-row versions (409 on a stale one)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify, request

from pmo.accounts.permissions import Permission, can
from pmo.api.openapi import document
from pmo.db import get_session
from pmo.plans import rules, service
from pmo.web.auth import current_actor, require
from pmo.web.errors import problem

bp = Blueprint("plans_api", __name__, url_prefix="/api/v1/bodies")

PLAN_ITEM = {
    "type": "object",
    "properties": {
        "subtask": {"type": "string", "description": "サブタスクのコード（例 B-2）"},
        "version": {"type": "integer", "description": "読み込んだ時点の版（未登録は0）"},
        "planned_start": {"type": ["string", "null"]}, "planned_end": {"type": ["string", "null"]},
        "actual_start": {"type": ["string", "null"]}, "actual_end": {"type": ["string", "null"]},
        "progress": {"type": ["integer", "null"]}, "not_applicable_reason": {"type": ["string", "null"]},
        "comment": {"type": ["string", "null"]}, "vendor": {"type": ["string", "null"]},
        "completion": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["subtask", "version"],
}
SHEET = {"type": "object", "properties": {"body": {"type": "string"}, "plans": {"type": "array", "items": PLAN_ITEM}}}


def _item(row: service.SheetRow) -> dict[str, Any]:
    v = row.values
    return {
        "subtask": row.subtask.code, "name": row.subtask.name, "version": row.version,
        "status": row.status, "status_label": rules.STATUS_LABELS[row.status],
        "milestone": row.subtask.milestone_date.isoformat(),
        **{name: (getattr(v, name).isoformat() if getattr(v, name) else None) for name in rules.DATE_FIELDS},
        "progress": v.progress, "not_applicable_reason": v.not_applicable_reason, "comment": v.comment,
        "vendor": v.vendor, "completion": v.completion_dict(),
    }


@bp.route("/<code>/plans", methods=("GET", "PUT"))
@require(Permission.PLAN_VIEW)
@document("団体の計画・実績。GETはサブタスクごとの値と版、PUTは指定したサブタスクを更新（版が古いと409で両方の値を返し、何も更新しない）",
          request_body={"type": "object", "properties": {"plans": {"type": "array", "items": PLAN_ITEM}},
                        "required": ["plans"]},
          response=SHEET, responses={"409": "他のユーザーが先に更新しました（両方の値を返します）"})
def plans(code: str) -> Any:
    if request.method == "PUT":
        return put_plans(code)
    db = get_session()
    sheet = service.load_sheet(db, current_actor(), code)
    db.commit()
    return jsonify({"body": sheet.body.code, "name": sheet.body.name, "as_of": sheet.as_of.isoformat(),
                    "plans": [_item(r) for r in sheet.rows]})


def put_plans(code: str) -> Any:
    """Update the listed sub-tasks (PLAN_EDIT, own body)."""
    db = get_session()
    if not can(current_actor(), Permission.PLAN_EDIT):
        return problem(403, "計画・実績を更新する権限がありません。")
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("plans"), list):
        return problem(400, "本文は {\"plans\": [...]} の形のJSONにしてください。")
    inputs = []
    for n, item in enumerate(payload["plans"], start=1):
        if not isinstance(item, dict) or not isinstance(item.get("subtask"), str) or not isinstance(item.get("version"), int):
            return problem(400, f"plans[{n}] には subtask（文字列）と version（整数）が必要です。")
        raw = {k: item.get(k) for k in (*rules.DATE_FIELDS, "progress", "not_applicable_reason", "comment", "vendor")}
        for key, value in (item.get("completion") or {}).items():
            raw[f"cf_{key}"] = value
        inputs.append(service.RowInput(item["subtask"].strip().upper(), raw, version=item["version"]))
    try:
        service.save_sheet(db, current_actor(), code, inputs, channel="api")
    except service.PlanConflict as exc:
        db.rollback()
        response = problem(409, exc.message)
        body = response.get_json()
        body["conflicts"] = [{
            "subtask": c.subtask_code, "version": c.version, "fields": c.fields,
            "theirs": {f: rules.display_value(c.theirs, f) for f in c.fields},
            "yours": {f: rules.display_value(c.yours, f) for f in c.fields},
        } for c in exc.rows]
        response.set_data(json.dumps(body, ensure_ascii=False))
        return response
    db.commit()
    sheet = service.load_sheet(db, current_actor(), code)
    return jsonify({"body": sheet.body.code, "plans": [_item(r) for r in sheet.rows]})
