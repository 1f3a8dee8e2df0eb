"""Walk the URL map: sample URLs for every rule, so route tests cover routes added later too."""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Flask

from tests.conftest import CITY_A

SAMPLE_VALUES = {"code": CITY_A, "filename": "css/pmo.css", "action": "disable"}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def sample_url(rule, values: dict[str, object] | None = None) -> str:
    values = {**SAMPLE_VALUES, **(values or {})}

    def fill(match: re.Match[str]) -> str:
        converter, name = match.group(1) or "", match.group(2)
        if name in values:
            return str(values[name])
        return "1" if converter.startswith(("int", "float")) else "x"

    return re.sub(r"<(?:([a-z]+)(?:\([^)]*\))?:)?([a-z_]+)>", fill, rule.rule)


def rules(app: Flask) -> Iterator:
    yield from sorted(app.url_map.iter_rules(), key=lambda r: r.rule)


def method_cases(app: Flask, methods: tuple[str, ...]) -> list[tuple[str, str, object]]:
    """(endpoint, method, rule) for every rule offering one of ``methods``."""
    return [(r.endpoint, m, r) for r in rules(app) for m in sorted(r.methods or ()) if m in methods]
