"""Describe API views where they are written; ``/api/v1/openapi.json`` collects them from the URL map."""

from __future__ import annotations

import re
from typing import Any, Callable, TypeVar

from flask import Flask

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM = {"$ref": "#/components/schemas/Problem"}
# Text the portal accepts: anything but NUL, which every request refuses with 400 (INP-03).
TEXT: dict[str, Any] = {"type": "string", "pattern": "^[^\\x00]*$"}


def document(
    summary: str,
    *,
    params: list[dict[str, Any]] | None = None,
    request_body: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    responses: dict[str, str] | None = None,
) -> Callable[[F], F]:
    """Attach an OpenAPI operation description to a view."""

    def decorate(view: F) -> F:
        view._openapi = {  # type: ignore[attr-defined]
            "summary": summary, "params": params or [], "request_body": request_body,
            "response": response or {"type": "object"}, "responses": responses or {},
        }
        return view

    return decorate


def query_param(name: str, description: str, required: bool = False, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or dict(TEXT)}


def build_spec(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route under /api/v1."""
    paths: dict[str, Any] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/api/v1"):
            continue
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "_openapi", None) or {"summary": rule.endpoint, "params": [], "request_body": None,
                                                    "response": {"type": "object"}, "responses": {}}
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        path_params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "integer"} if f"<int:{name}>" in rule.rule else dict(TEXT)}
            for name in rule.arguments
        ]
        public = getattr(view, "_pmo_public", False)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            responses: dict[str, Any] = {
                "200": {"description": "成功", "content": {"application/json": {"schema": meta["response"]}}},
                "400": {"description": "リクエストが正しくありません", "content": {"application/problem+json": {"schema": PROBLEM}}},
                "404": {"description": "見つかりません", "content": {"application/problem+json": {"schema": PROBLEM}}},
                "405": {"description": "許可されていないメソッド", "content": {"application/problem+json": {"schema": PROBLEM}}},
                "429": {"description": "リクエストが多すぎます", "content": {"application/problem+json": {"schema": PROBLEM}}},
            }
            if not public:
                responses["401"] = {"description": "認証が必要です", "content": {"application/problem+json": {"schema": PROBLEM}}}
                responses["403"] = {"description": "権限がありません", "content": {"application/problem+json": {"schema": PROBLEM}}}
            if meta["request_body"] is not None:
                responses["422"] = {"description": "入力内容に誤りがあります", "content": {"application/problem+json": {"schema": PROBLEM}}}
            for code, text in meta["responses"].items():
                responses.setdefault(code, {"description": text, "content": {"application/problem+json": {"schema": PROBLEM}}})
            operation: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "summary": meta["summary"],
                "parameters": path_params + meta["params"],
                "responses": responses,
            }
            if not public:
                operation["security"] = [{"bearerAuth": []}]
            else:
                operation["security"] = []
            if meta["request_body"] is not None and method in ("POST", "PUT", "PATCH"):
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": meta["request_body"]}}}
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "デジタルPMO API", "version": "1", "description": "個人APIトークン（Bearer）で認証します。"},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                        "detail": {"type": "string"}, "instance": {"type": "string"},
                        "request_id": {"type": ["string", "null"]},
                        "errors": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["title", "status"],
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }
