"""Shape checks of the subsidy screens' form input (money, years, estimate grids); rules stay in the service."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from pmo.core.errors import Problem, ValidationFailed
from pmo.subsidy import rules, service
from pmo.subsidy.rules import System

_MONEY = re.compile(r"-?[0-9]+")


def money(raw: str | None, field: str, label: str, problems: list[Problem], *, required: bool = True,
          allow_negative: bool = False) -> int | None:
    """Read yen typed by a person: full-width digits, commas and 円 allowed; integers only."""
    text = unicodedata.normalize("NFKC", raw or "").replace(",", "").replace("円", "").strip()
    if not text:
        if required:
            problems.append(Problem(field, f"{label}を入力してください。"))
        return None
    if not _MONEY.fullmatch(text) or len(text) > 15:
        problems.append(Problem(field, f"{label}「{raw}」は円単位の整数で入力してください。"))
        return None
    value = int(text)
    if value < 0 and not allow_negative:
        problems.append(Problem(field, f"{label}は0円以上で入力してください。"))
        return None
    return value


def fiscal_year(raw: Any, default: int = 2014) -> int:
    text = str(raw or "").strip()
    return int(text) if text.isdigit() and int(text) in rules.FISCAL_PROJECTS else default


def version(form: Mapping[str, str]) -> int:
    raw = form.get("version", "")
    if not raw.isdigit():
        raise ValidationFailed([Problem("version", "画面の版がありません。再読み込みしてください。")])
    return int(raw)


def system(raw: str | None, field: str = "system") -> System:
    if raw not in set(System):
        raise ValidationFailed([Problem(field, f"システム「{raw}」は補助対象システムにありません。")])
    return System(raw)


def application_lines(form: Mapping[str, str], systems: list[str]) -> list[service.LineInput]:
    """cost-<system>, income-<system>, estimate-<system> fields → line inputs; all problems at once."""
    problems: list[Problem] = []
    out = []
    for name in systems:
        cost = money(form.get(f"cost-{name}"), f"cost-{name}", f"{name}の補助対象経費", problems, required=False) or 0
        income = money(form.get(f"income-{name}"), f"income-{name}", f"{name}の寄付金その他の収入", problems,
                       required=False) or 0
        raw_estimate = form.get(f"estimate-{name}", "")
        estimate_id = int(raw_estimate) if raw_estimate.isdigit() else None
        out.append(service.LineInput(System(name), cost, income, estimate_id))
    if problems:
        raise ValidationFailed(problems)
    return out


def allocations(form: Mapping[str, str], systems: list[str]) -> dict[System, int]:
    problems: list[Problem] = []
    out = {}
    for name in systems:
        value = money(form.get(f"alloc-{name}"), f"alloc-{name}", f"{name}の配分額", problems, required=False)
        if value is not None:
            out[System(name)] = value
    if problems:
        raise ValidationFailed(problems)
    return out


def estimate_grid(form: Mapping[str, str], count: int) -> list[tuple[int, dict[str, str]]]:
    """Rows l-<i>-<column> of the on-screen line entry, numbered as the screen shows them."""
    keys = {"工程": "phase", "作業項目": "item", "作業者区分": "worker", "単価": "price", "単位": "unit",
            "工数": "effort", "金額": "amount"}
    rows = []
    for i in range(1, count + 1):
        rows.append((i, {h: form.get(f"l-{i}-{k}", "") for h, k in keys.items()}))
    return rows
