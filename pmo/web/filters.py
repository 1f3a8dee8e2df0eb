"""Jinja filters: 和暦 dates, yen, counts, labels."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask

from pmo.core.clock import JST


def _wareki(value: dt.date, style: str = "long") -> str:
    try:
        from pmo.core.dates import to_wareki

        return to_wareki(value, style=style)
    except ImportError:  # pragma: no cover - dates module always present in a full install
        return value.isoformat()


def date_ja(value: Any, style: str = "long") -> str:
    """2015-10-05 → 2015年10月5日 (平成27年10月5日 with style='wareki')."""
    if value is None or value == "":
        return ""
    if isinstance(value, dt.datetime):
        value = value.astimezone(JST) if value.tzinfo else value
        value = value.date()
    if not isinstance(value, dt.date):
        return str(value)
    if style == "wareki":
        return _wareki(value)
    if style == "short":
        return value.strftime("%Y/%m/%d")
    return f"{value.year}年{value.month}月{value.day}日"


def datetime_ja(value: Any) -> str:
    if not value:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    local = value.astimezone(JST)
    return local.strftime("%Y/%m/%d %H:%M")


def yen(value: Any) -> str:
    if value is None:
        return ""
    return f"{int(value):,}円"


def number(value: Any) -> str:
    if value is None or value == "":
        return ""
    return f"{int(value):,}"


def init_app(app: Flask) -> None:
    from pmo.audit.labels import action_label, target_label

    app.add_template_filter(action_label, "action_label")
    app.add_template_filter(target_label, "target_label")
    app.add_template_filter(date_ja, "date_ja")
    app.add_template_filter(datetime_ja, "datetime_ja")
    app.add_template_filter(yen, "yen")
    app.add_template_filter(number, "number")
