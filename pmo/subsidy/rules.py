"""Subsidy arithmetic and vendor-estimate checks (SUBSIDY.md), exact and pure.

No Flask, no database, no files, no clock: parsers take text or rows that were already read.
Money is ``int`` yen; rates, slopes and scale factors are ``fractions.Fraction``; decimals in the
exchange formats go through ``decimal.Decimal``. Binary floats are refused wherever money or effort
comes in, so every yen can be checked by hand.

Readings of SUBSIDY.md made here (each is a rule, tested):

* Base table: a curve needs **at least two** breakpoints (one point gives no slope). Row order in
  the file does not matter; a curve is sorted by population, and the same population twice is a
  duplicate. A table with any problem is refused whole, every problem listed with its spreadsheet
  row (the header is row 1). 千円 amounts must come to whole yen (at most 3 decimals in effect).
* Below the first breakpoint the first segment's line is used, but never below 0 yen, so the base
  still rises with population and population 0 (双葉町) works. Past the last breakpoint the last
  segment's slope continues.
* 配分: systems not named in ``allocations`` keep their own base; what is checked is that the
  allocated total of each category does not exceed that category's base.
* Grant: ``eligible`` = Σ max(0, cost − other income); ``eligible_within_base`` = Σ min(allocated
  base, eligible); grant = floor_to_1000(rate × eligible_within_base), and in a later round at most
  floor_to_1000(rate × category base) − already granted (never below 0).
* 地方負担額 (``local_share``) of 一般分 = eligible_within_base − grant: the 1/3 that 交付税 covers plus
  the rounding remainder under 1,000 yen. For 10/10 it is 0 by definition.
* Estimates: 単価 is compared in 円/人月 (人日 × ``days_per_month``, default 20). "Far above" means
  strictly above ``multiple`` × the peer median, judged only with at least ``min_peers`` peers.
  Lines with a negative amount are discounts (出精値引き) and are not called 一式.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeVar

from pmo.core.errors import Problem, ValidationFailed

__all__ = [
    "BODY_KIND_LABELS",
    "BaseTable",
    "BaseTableError",
    "BaseWorking",
    "BodyKind",
    "Breakpoint",
    "CATEGORY_RATES",
    "Category",
    "CategoryGrant",
    "CurveKey",
    "DEFAULT_POPULATION_CLASSES",
    "ELIGIBLE_SYSTEMS",
    "EstimateFlag",
    "EstimateLine",
    "FISCAL_PROJECTS",
    "FiscalProject",
    "FlagCode",
    "GrantResult",
    "PeerSettings",
    "Phase",
    "PopulationClass",
    "Position",
    "RowProblem",
    "SYSTEM_CATEGORY",
    "Settlement",
    "SubsidyInputError",
    "System",
    "SystemGrantLine",
    "TABLE_COLUMNS",
    "TransferResult",
    "Unit",
    "allocate_bases",
    "base_amount",
    "category_bases",
    "check_estimate",
    "compute_grant",
    "floor_to_1000",
    "grant_from_request",
    "normalize_text",
    "parse_base_table",
    "parse_keywords",
    "phase_of",
    "population_class",
    "population_classes",
    "scale_to_budget",
    "settle_grant",
    "thousand_yen_to_yen",
    "transfer_to_union",
]


# --------------------------------------------------------------------------------------------
# Vocabulary (values are the names the exchange formats use)


class BodyKind(StrEnum):
    PREFECTURE = "prefecture"
    MUNICIPALITY = "municipality"
    UNION = "union"


BODY_KIND_LABELS: Mapping[BodyKind, str] = MappingProxyType(
    {
        BodyKind.PREFECTURE: "都道府県",
        BodyKind.MUNICIPALITY: "市区町村",
        BodyKind.UNION: "一部事務組合・広域連合",
    }
)


class System(StrEnum):
    """補助対象システム; the value is the name used in the base table and in requests."""

    PUBLIC_ASSISTANCE = "生活保護"
    DISABILITY_WELFARE = "障害者福祉"
    SPECIAL_CHILD_ALLOWANCE = "特別児童扶養手当"
    CHILD_WELFARE = "児童福祉"
    NATIONAL_HEALTH_INSURANCE = "国民健康保険"
    LATE_ELDERLY_MEDICAL = "後期高齢者医療"
    LONG_TERM_CARE = "介護保険"
    HEALTH_MANAGEMENT = "健康管理"
    NATIONAL_PENSION = "国民年金"


class Category(StrEnum):
    """区分: each has its own rate."""

    GENERAL = "一般分"
    PENSION_AND_CHILD_ALLOWANCE = "国民年金・特別児童扶養手当分"


CATEGORY_RATES: Mapping[Category, Fraction] = MappingProxyType(
    {Category.GENERAL: Fraction(2, 3), Category.PENSION_AND_CHILD_ALLOWANCE: Fraction(1, 1)}
)

SYSTEM_CATEGORY: Mapping[System, Category] = MappingProxyType(
    {
        s: (
            Category.PENSION_AND_CHILD_ALLOWANCE
            if s in (System.NATIONAL_PENSION, System.SPECIAL_CHILD_ALLOWANCE)
            else Category.GENERAL
        )
        for s in System
    }
)

# Unions get no base of their own: only what members hand over (§4).
ELIGIBLE_SYSTEMS: Mapping[BodyKind, frozenset[System]] = MappingProxyType(
    {
        BodyKind.PREFECTURE: frozenset(
            {
                System.PUBLIC_ASSISTANCE,
                System.DISABILITY_WELFARE,
                System.SPECIAL_CHILD_ALLOWANCE,
                System.CHILD_WELFARE,
                System.HEALTH_MANAGEMENT,
            }
        ),
        BodyKind.MUNICIPALITY: frozenset(System),
        BodyKind.UNION: frozenset(),
    }
)


class Phase(StrEnum):
    """工程 of an estimate line (§6)."""

    DESIGN = "設計"
    DEVELOPMENT = "開発"
    UNIT_TEST = "単体テスト"
    INTEGRATION_TEST = "結合テスト"
    SYSTEM_TEST = "総合テスト"
    LINKAGE_TEST = "団体内連携テスト"
    OPERATIONAL_TEST = "総合運用テスト"


# The wording of SUBSIDY.md §2, which vendors also use.
_PHASE_ALIASES: Mapping[str, Phase] = MappingProxyType(
    {
        "システム設計": Phase.DESIGN,
        "プログラム開発": Phase.DEVELOPMENT,
        "プログラム結合テスト": Phase.INTEGRATION_TEST,
        "結合試験": Phase.INTEGRATION_TEST,
        "単体試験": Phase.UNIT_TEST,
        "総合試験": Phase.SYSTEM_TEST,
    }
)


@dataclass(frozen=True)
class FiscalProject:
    """A 年度事業: which 工程 its contracts may bill."""

    fiscal_year: int
    label: str
    phases: tuple[Phase, ...]


FISCAL_PROJECTS: Mapping[int, FiscalProject] = MappingProxyType(
    {
        2014: FiscalProject(2014, "平成26年度事業", (Phase.DESIGN, Phase.DEVELOPMENT, Phase.UNIT_TEST)),
        2015: FiscalProject(
            2015, "平成27年度事業", (Phase.INTEGRATION_TEST, Phase.SYSTEM_TEST, Phase.LINKAGE_TEST)
        ),
        2016: FiscalProject(2016, "平成28年度事業", (Phase.OPERATIONAL_TEST,)),
    }
)


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class RowProblem(Problem):
    """A problem in a table, with the row a spreadsheet user sees (header = row 1)."""

    row: int | None = None

    def __str__(self) -> str:
        where = f"{self.row}行目 " if self.row is not None else ""
        return f"{where}{self.field}: {self.message}"


class BaseTableError(ValidationFailed):
    """The base table was refused whole; ``problems`` lists every reason with its row."""


class SubsidyInputError(ValidationFailed):
    """A request or argument was refused; ``problems`` name the field path of each reason."""


# --------------------------------------------------------------------------------------------
# Money helpers

_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_UINT_RE = re.compile(r"[0-9]+")


def floor_to_1000(amount: int | Fraction) -> int:
    """Round down to whole 1,000 yen: amounts are always cut, never rounded up."""
    if isinstance(amount, bool) or not isinstance(amount, (int, Fraction)):
        raise TypeError(f"amount must be int or Fraction, not {type(amount).__name__}")
    return int(amount // 1000) * 1000


def thousand_yen_to_yen(text: str) -> int:
    """Parse a 千円 amount such as ``1234.5`` into exact int yen; raise ValueError (Japanese) if not."""
    value = text.strip()
    if not value:
        raise ValueError("金額がありません。")
    if not _DECIMAL_RE.fullmatch(value):
        raise ValueError(f"金額「{value}」は千円単位の数値（例: 1234.5）で入力してください。")
    yen = Fraction(Decimal(value)) * 1000
    if yen < 0:
        raise ValueError(f"金額「{value}」は0以上で入力してください。")
    if yen.denominator != 1:
        raise ValueError(f"金額「{value}」千円は1円未満の端数を含みます。小数は1円単位（千円の小数3桁）までです。")
    return int(yen)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_money(value: object, path: str, problems: list[Problem], *, label: str = "金額") -> bool:
    if not _is_int(value):
        problems.append(Problem(path, f"{label}は円単位の整数で入力してください（小数・文字列・真偽値は使えません）。"))
        return False
    if value < 0:  # type: ignore[operator]
        problems.append(Problem(path, f"{label}は0円以上で入力してください。"))
        return False
    return True


def _yen(amount: int | Fraction) -> str:
    if isinstance(amount, Fraction) and amount.denominator != 1:
        return f"約{int(amount):,}円"
    return f"{int(amount):,}円"


def _thousand(yen: int) -> str:
    return f"{Decimal(yen).scaleb(-3).normalize():,f}千円"


def _decimal_text(value: Fraction | Decimal | int) -> str:
    """Show an exact number as a decimal when it has one, else as a fraction."""
    frac = Fraction(value)
    for digits in range(7):
        scaled = frac * 10**digits
        if scaled.denominator == 1:
            return f"{Decimal(int(scaled)).scaleb(-digits):,f}"
    return f"{frac.numerator}/{frac.denominator}"


def _exact(value: object, what: str) -> Fraction:
    """Turn int/Decimal/Fraction into a Fraction; refuse floats so nothing binary sneaks in."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, Fraction)):
        raise TypeError(f"{what} must be int, Decimal or Fraction, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{what} must be finite")
    return Fraction(value)


# --------------------------------------------------------------------------------------------
# Base-amount table (§3)

TABLE_COLUMNS = ("fiscal_year", "body_kind", "system", "population", "amount_thousand_yen")


class CurveKey(NamedTuple):
    fiscal_year: int
    body_kind: BodyKind
    system: System


@dataclass(frozen=True)
class Breakpoint:
    """One ``(population, amount)`` point; ``row`` remembers where it came from, for messages."""

    population: int
    amount: int
    row: int | None = field(default=None, compare=False)


def _curve_label(key: CurveKey) -> str:
    return f"{key.fiscal_year}年度・{BODY_KIND_LABELS[key.body_kind]}・{key.system}"


def _row_ref(row: int | None) -> str:
    return f"{row}行目" if row is not None else "前の区切り"


def _curve_problems(key: CurveKey, points: Sequence[Breakpoint], *, count: bool = True) -> list[Problem]:
    """Check one curve: at least two points, populations strictly rising, amounts never falling."""
    problems: list[Problem] = []
    label = _curve_label(key)
    if count and len(points) < 2:
        row = points[0].row if points else None
        problems.append(
            RowProblem(
                "population",
                f"{label}の区切りが1つしかありません。直線で補間するため、区切りは少なくとも2つ必要です。",
                row,
            )
        )
    for prev, cur in pairwise(points):
        if cur.population == prev.population:
            message = (
                f"{label}の同じ行が重複しています（{_row_ref(prev.row)}と同じ）。"
                if cur.amount == prev.amount
                else f"{label}の人口{cur.population:,}人の区切りが重複しています（{_row_ref(prev.row)}にもあります）。"
            )
            problems.append(RowProblem("population", message, cur.row))
        elif cur.population < prev.population:
            problems.append(
                RowProblem("population", f"{label}の人口の区切りは小さい順に並べてください。", cur.row)
            )
        elif cur.amount < prev.amount:
            problems.append(
                RowProblem(
                    "amount_thousand_yen",
                    f"{label}の金額{_thousand(cur.amount)}が、人口のより少ない区切り（{_row_ref(prev.row)}、"
                    f"人口{prev.population:,}人）の{_thousand(prev.amount)}を下回っています。"
                    "基準額は人口とともに減ってはいけません。",
                    cur.row,
                )
            )
    return problems


@dataclass(frozen=True)
class BaseTable:
    """Validated breakpoints per (fiscal year, body kind, system); build it with ``parse_base_table``."""

    curves: Mapping[CurveKey, tuple[Breakpoint, ...]]

    def __post_init__(self) -> None:
        curves = {CurveKey(*key): tuple(points) for key, points in self.curves.items()}
        problems = [p for key, points in curves.items() for p in _curve_problems(key, points)]
        if problems:
            raise BaseTableError(problems)
        object.__setattr__(self, "curves", MappingProxyType(curves))

    def curve(self, fiscal_year: int, body_kind: BodyKind, system: System) -> tuple[Breakpoint, ...] | None:
        """Return one curve, or None when the table has none for that key."""
        return self.curves.get(CurveKey(fiscal_year, body_kind, system))

    @property
    def fiscal_years(self) -> frozenset[int]:
        """The fiscal-year projects the table has curves for."""
        return frozenset(key.fiscal_year for key in self.curves)


def _header_problems(header: Sequence[str]) -> list[Problem]:
    problems: list[Problem] = []
    expected = ",".join(TABLE_COLUMNS)
    if not any(h.strip() for h in header):
        return [RowProblem("header", f"見出し行がありません。1行目は「{expected}」にしてください。", 1)]
    names = [h.strip() for h in header]
    for missing in (c for c in TABLE_COLUMNS if c not in names):
        problems.append(RowProblem(missing, f"見出しに列「{missing}」がありません（見出しは「{expected}」）。", 1))
    for extra in dict.fromkeys(n for n in names if n not in TABLE_COLUMNS):
        problems.append(RowProblem(extra or "header", f"見出しの列「{extra}」は使えません（見出しは「{expected}」）。", 1))
    for dup in dict.fromkeys(n for n in names if names.count(n) > 1 and n in TABLE_COLUMNS):
        problems.append(RowProblem(dup, f"見出しに列「{dup}」が2回あります。", 1))
    return problems


def _rows_from_text(text: str) -> tuple[list[tuple[int, dict[str, str | None]]], list[Problem]]:
    records = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    header = records[0] if records else []
    problems = _header_problems(header)
    if problems:
        return [], problems
    names = [h.strip() for h in header]
    rows: list[tuple[int, dict[str, str | None]]] = []
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue  # a blank line is not a row of data
        if len(record) != len(names):
            problems.append(
                RowProblem("row", f"列の数が見出しと合いません（{len(record)}列、見出しは{len(names)}列）。", number)
            )
            continue
        rows.append((number, dict(zip(names, record))))
    return rows, problems


def _rows_from_mappings(
    source: Iterable[Mapping[str | None, Any]],
) -> tuple[list[tuple[int, dict[str, str | None]]], list[Problem]]:
    materialised = list(source)
    if not materialised:
        return [], []
    problems = _header_problems([k for k in materialised[0] if k is not None])
    if problems:
        return [], problems
    rows: list[tuple[int, dict[str, str | None]]] = []
    for number, row in enumerate(materialised, start=2):
        if row.get(None):  # csv.DictReader puts surplus cells under None
            problems.append(RowProblem("row", "列の数が見出しより多くなっています。", number))
            continue
        values = {c: row.get(c) for c in TABLE_COLUMNS}
        if not any(v is not None and str(v).strip() for v in values.values()):
            continue
        rows.append((number, values))
    return rows, problems


def _parse_row(
    number: int, row: Mapping[str, str | None], fiscal_years: Collection[int], problems: list[Problem]
) -> tuple[CurveKey | None, Breakpoint | None]:
    """Check every field of one row (all problems, not just the first); return its curve and point."""
    before = len(problems)
    cells: dict[str, str] = {}
    for column in TABLE_COLUMNS:
        value = row.get(column)
        if value is None or not str(value).strip():
            problems.append(RowProblem(column, "値がありません。", number))
        else:
            cells[column] = str(value).strip()

    fiscal_year = body_kind = system = population = amount = None
    if "fiscal_year" in cells:
        text = cells["fiscal_year"]
        if not _UINT_RE.fullmatch(text):
            problems.append(RowProblem("fiscal_year", f"年度「{text}」は整数（例: 2014）で入力してください。", number))
        elif int(text) not in fiscal_years:
            years = "、".join(str(y) for y in sorted(fiscal_years))
            problems.append(RowProblem("fiscal_year", f"{text}年度の年度事業はありません（{years}のいずれか）。", number))
        else:
            fiscal_year = int(text)
    if "body_kind" in cells:
        text = cells["body_kind"]
        if text in (BodyKind.PREFECTURE, BodyKind.MUNICIPALITY):
            body_kind = BodyKind(text)
        elif text == BodyKind.UNION:
            problems.append(
                RowProblem(
                    "body_kind",
                    "一部事務組合・広域連合の基準額は構成団体からの移管で決まるため、表には載せません。",
                    number,
                )
            )
        else:
            problems.append(
                RowProblem(
                    "body_kind",
                    f"団体区分「{text}」は prefecture（都道府県）か municipality（市区町村）で入力してください。",
                    number,
                )
            )
    if "system" in cells:
        text = cells["system"]
        if text not in set(System):
            names = "、".join(System)
            problems.append(RowProblem("system", f"システム「{text}」は補助対象システム（{names}）にありません。", number))
        else:
            system = System(text)
            if body_kind is not None and system not in ELIGIBLE_SYSTEMS[body_kind]:
                problems.append(
                    RowProblem(
                        "system",
                        f"「{system}」は{BODY_KIND_LABELS[body_kind]}の補助対象システムではありません。",
                        number,
                    )
                )
    if "population" in cells:
        text = cells["population"]
        if _UINT_RE.fullmatch(text):
            population = int(text)
        elif text.startswith("-") and _UINT_RE.fullmatch(text[1:]):
            problems.append(RowProblem("population", f"人口「{text}」は0以上で入力してください。", number))
        else:
            problems.append(
                RowProblem("population", f"人口「{text}」は0以上の整数（カンマ・小数なし）で入力してください。", number)
            )
    if "amount_thousand_yen" in cells:
        try:
            amount = thousand_yen_to_yen(cells["amount_thousand_yen"])
        except ValueError as exc:
            problems.append(RowProblem("amount_thousand_yen", str(exc), number))

    key = None
    if fiscal_year is not None and body_kind is not None and system is not None:
        key = CurveKey(fiscal_year, body_kind, system)
    if len(problems) > before or population is None or amount is None:
        return key, None
    return key, Breakpoint(population, amount, number)


def parse_base_table(
    source: str | Iterable[Mapping[str | None, Any]],
    *,
    fiscal_years: Collection[int] = tuple(FISCAL_PROJECTS),
) -> BaseTable:
    """Validate a base table (CSV text or dict rows) and build it; refuse it whole on any problem.

    Raises ``BaseTableError`` listing every problem with its row (header = row 1) and column.
    """
    if isinstance(source, str):
        rows, problems = _rows_from_text(source)
    else:
        rows, problems = _rows_from_mappings(source)
    if not rows and not problems:
        problems.append(RowProblem("row", "データ行がありません。", None))
    grouped: dict[CurveKey, list[Breakpoint]] = {}
    broken: set[CurveKey] = set()  # curves with a refused row: counting their points would mislead
    for number, row in rows:
        key, point = _parse_row(number, row, fiscal_years, problems)
        if key is not None and point is not None:
            grouped.setdefault(key, []).append(point)
        elif key is not None:
            broken.add(key)
    for key, points in grouped.items():
        points.sort(key=lambda p: p.population)  # stable: the earlier row stays first
        problems.extend(_curve_problems(key, points, count=key not in broken))
    if problems:
        problems.sort(key=lambda p: getattr(p, "row", None) or 0)
        raise BaseTableError(problems)
    return BaseTable({key: tuple(points) for key, points in grouped.items()})


class Position(StrEnum):
    """Where the population fell relative to the breakpoints."""

    BELOW_FIRST = "below_first"
    BETWEEN = "between"
    BEYOND_LAST = "beyond_last"


@dataclass(frozen=True)
class BaseWorking:
    """A base amount with its working, so a screen can show every step."""

    fiscal_year: int
    body_kind: BodyKind
    system: System
    population: int
    lower: Breakpoint
    upper: Breakpoint
    position: Position
    line_value: Fraction  # on the straight line through lower and upper (may be < 0 below the first point)
    exact: Fraction  # max(0, line_value)
    amount: int  # exact floored to 1,000 yen

    @property
    def slope(self) -> Fraction:
        """Yen per inhabitant on the segment used."""
        return Fraction(self.upper.amount - self.lower.amount, self.upper.population - self.lower.population)

    def explain(self) -> tuple[str, ...]:
        """Return the steps in Japanese, one per line."""
        where = {
            Position.BELOW_FIRST: "最初の区切りより少ないため、最初の区間の直線を延ばして使います（0円未満にはしません）。",
            Position.BETWEEN: "この2つの区切りの間を直線で補間します。",
            Position.BEYOND_LAST: "最後の区切りを超えるため、最後の区間の傾きを延ばして使います。",
        }[self.position]
        return (
            f"人口 {self.population:,}人",
            f"区切り: 人口{self.lower.population:,}人 → {_yen(self.lower.amount)}、"
            f"人口{self.upper.population:,}人 → {_yen(self.upper.amount)}",
            where,
            f"{_yen(self.lower.amount)} + ({self.upper.amount - self.lower.amount:,}円 × "
            f"({self.population:,} − {self.lower.population:,}) ÷ "
            f"{self.upper.population - self.lower.population:,}) = {_decimal_text(self.line_value)}円",
            f"千円未満切り捨て: {_yen(self.amount)}",
        )


def _coerce(enum: type[StrEnum], value: object, path: str, message: str, problems: list[Problem]) -> Any:
    if isinstance(value, str) and value in set(enum):
        return enum(value)
    problems.append(Problem(path, message.format(value=value)))
    return None


def base_amount(
    table: BaseTable, fiscal_year: int, body_kind: BodyKind | str, system: System | str, population: int
) -> BaseWorking:
    """Interpolate the 国庫補助基準額 of one system from the body's population, floored to 1,000 yen.

    Raises ``SubsidyInputError`` for an unknown kind/system, a bad population or a missing curve.
    """
    problems: list[Problem] = []
    kind = _coerce(BodyKind, body_kind, "body_kind", "団体区分「{value}」は知られていません。", problems)
    sys_ = _coerce(System, system, "system", "システム「{value}」は補助対象システムにありません。", problems)
    if not _is_int(population) or population < 0:
        problems.append(Problem("population", "人口は0以上の整数で指定してください。"))
    if isinstance(fiscal_year, bool) or not isinstance(fiscal_year, int):
        problems.append(Problem("fiscal_year", "年度は整数で指定してください。"))
    if problems:
        raise SubsidyInputError(problems)
    points = table.curve(fiscal_year, kind, sys_)
    if points is None:
        label = _curve_label(CurveKey(fiscal_year, kind, sys_))
        raise SubsidyInputError([Problem("system", f"{label}の基準額表がありません。")])

    populations = [p.population for p in points]
    index = min(max(bisect_right(populations, population) - 1, 0), len(points) - 2)
    lower, upper = points[index], points[index + 1]
    if population < lower.population:
        position = Position.BELOW_FIRST
    elif population > upper.population:
        position = Position.BEYOND_LAST
    else:
        position = Position.BETWEEN
    line_value = lower.amount + Fraction(upper.amount - lower.amount, upper.population - lower.population) * (
        population - lower.population
    )
    exact = max(Fraction(0), line_value)
    return BaseWorking(
        fiscal_year, kind, sys_, population, lower, upper, position, line_value, exact, floor_to_1000(exact)
    )


# --------------------------------------------------------------------------------------------
# Budget, categories, allocations, unions (§3, §4)

K = TypeVar("K")


def scale_to_budget(bases: Mapping[K, int], budget: int) -> tuple[dict[K, int], Fraction]:
    """Scale every base by budget / sum when the sum exceeds the budget (予算の範囲内), flooring each.

    Returns the new bases and the factor (1 when the budget is not exceeded).
    """
    problems: list[Problem] = []
    _check_money(budget, "budget", problems, label="予算額")
    for key, value in bases.items():
        _check_money(value, f"bases.{key}", problems, label="基準額")
    if problems:
        raise SubsidyInputError(problems)
    total = sum(bases.values())
    if total <= budget:
        return dict(bases), Fraction(1)
    factor = Fraction(budget, total)
    return {key: floor_to_1000(value * factor) for key, value in bases.items()}, factor


def _system_keys(
    mapping: Mapping[Any, Any], path: str, problems: list[Problem]
) -> dict[System, Any]:
    out: dict[System, Any] = {}
    for key, value in mapping.items():
        system = _coerce(System, key, f"{path}.{key}", "システム「{value}」は補助対象システムにありません。", problems)
        if system is not None:
            out[system] = value
    return out


def category_bases(system_bases: Mapping[System, int]) -> dict[Category, int]:
    """Sum system bases into their categories (both categories always present)."""
    totals = {category: 0 for category in Category}
    for system, amount in system_bases.items():
        totals[SYSTEM_CATEGORY[System(system)]] += amount
    return totals


def allocate_bases(
    system_bases: Mapping[System, int], allocations: Mapping[System, int] | None = None
) -> dict[System, int]:
    """Apply 配分 within each category; systems not named keep their own base.

    Raises ``SubsidyInputError`` when an allocation is negative, names an unregistered system, or
    a category's allocated total exceeds its base.
    """
    problems: list[Problem] = []
    bases = _system_keys(system_bases, "bases", problems)
    wanted = _system_keys(allocations or {}, "allocations", problems)
    for system, value in wanted.items():
        path = f"allocations.{system}"
        if system not in bases:
            problems.append(Problem(path, f"「{system}」は登録されたシステムではないため配分できません。"))
        else:
            _check_money(value, path, problems, label="配分額")
    if problems:
        raise SubsidyInputError(problems)
    allocated = {**bases, **wanted}
    limits = category_bases(bases)
    for category, total in category_bases(allocated).items():
        if total > limits[category]:
            problems.append(
                Problem(
                    "allocations",
                    f"{category}の配分の合計（{_yen(total)}）が区分の基準額（{_yen(limits[category])}）を超えています。",
                )
            )
    if problems:
        raise SubsidyInputError(problems)
    return allocated


class TransferResult(NamedTuple):
    member: dict[System, int]
    union: dict[System, int]


def transfer_to_union(
    member_bases: Mapping[System, int], union_bases: Mapping[System, int], amounts: Mapping[System, int]
) -> TransferResult:
    """Hand part of a member's base to a union (§4): the member's drops, the union's rises by the same.

    Raises ``SubsidyInputError`` when a member would hand over more than it has.
    """
    problems: list[Problem] = []
    member = _system_keys(member_bases, "member", problems)
    union = _system_keys(union_bases, "union", problems)
    moves = _system_keys(amounts, "transfers", problems)
    for system, value in moves.items():
        path = f"transfers.{system}"
        if _check_money(value, path, problems, label="移管額") and value > member.get(system, 0):
            problems.append(
                Problem(
                    path,
                    f"{system}の移管額（{_yen(value)}）が構成団体の基準額（{_yen(member.get(system, 0))}）を超えています。",
                )
            )
    if problems:
        raise SubsidyInputError(problems)
    new_member, new_union = dict(member), dict(union)
    for system, value in moves.items():
        new_member[system] = new_member.get(system, 0) - value
        new_union[system] = new_union.get(system, 0) + value
    return TransferResult(new_member, new_union)


# --------------------------------------------------------------------------------------------
# The grant (§5)


@dataclass(frozen=True)
class SystemGrantLine:
    system: System
    base: int  # allocated base
    cost: int
    other_income: int
    eligible: int  # max(0, cost − other_income)
    counted: int  # min(base, eligible)


@dataclass(frozen=True)
class CategoryGrant:
    """One category's grant with its working."""

    category: Category
    rate: Fraction
    base: int
    eligible: int
    eligible_within_base: int
    already_granted: int
    round_cap: int  # floor_to_1000(rate × base) − already_granted, never below 0
    grant: int
    local_share: int
    lines: tuple[SystemGrantLine, ...]

    def as_dict(self) -> dict[str, int]:
        """The JSON shape of one category: int yen only."""
        return {
            "base": self.base,
            "eligible": self.eligible,
            "grant": self.grant,
            "local_share": self.local_share,
        }


@dataclass(frozen=True)
class GrantResult:
    categories: Mapping[Category, CategoryGrant]

    @property
    def total_grant(self) -> int:
        """Both categories together."""
        return sum(c.grant for c in self.categories.values())

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``grant_from_request``."""
        return {"categories": {str(c): self.categories[c].as_dict() for c in Category}}


def compute_grant(
    allocated_bases: Mapping[System, int],
    costs: Mapping[System, int],
    other_income: Mapping[System, int] | None = None,
    already_granted: Mapping[Category, int] | None = None,
) -> GrantResult:
    """Compute each category's grant = floor_to_1000(rate × Σ min(allocated base, eligible cost)).

    A later round passes what earlier rounds granted; it can only use what is left of
    rate × base. Raises ``SubsidyInputError`` on negative or non-int money.
    """
    problems: list[Problem] = []
    bases = _system_keys(allocated_bases, "bases", problems)
    cost = _system_keys(costs, "costs", problems)
    income = _system_keys(other_income or {}, "other_income", problems)
    granted: dict[Category, Any] = {}
    for key, value in (already_granted or {}).items():
        category = _coerce(Category, key, f"already_granted.{key}", "区分「{value}」はありません。", problems)
        if category is not None:
            granted[category] = value
    for path, mapping in (("bases", bases), ("costs", cost), ("other_income", income)):
        for system, value in mapping.items():
            _check_money(value, f"{path}.{system}", problems)
    for category, value in granted.items():
        _check_money(value, f"already_granted.{category}", problems, label="交付済額")
    if problems:
        raise SubsidyInputError(problems)

    lines_by_category: dict[Category, list[SystemGrantLine]] = {c: [] for c in Category}
    for system in System:  # fixed order, so results read the same every time
        if system not in bases and system not in cost:
            continue
        base, spent, other = bases.get(system, 0), cost.get(system, 0), income.get(system, 0)
        eligible = max(0, spent - other)
        lines_by_category[SYSTEM_CATEGORY[system]].append(
            SystemGrantLine(system, base, spent, other, eligible, min(base, eligible))
        )
    categories: dict[Category, CategoryGrant] = {}
    for category, lines in lines_by_category.items():
        rate = CATEGORY_RATES[category]
        base = sum(line.base for line in lines)
        within = sum(line.counted for line in lines)
        before = granted.get(category, 0)
        cap = max(0, floor_to_1000(rate * base) - before)
        grant = floor_to_1000(min(rate * within, Fraction(cap)))
        local_share = 0 if rate == 1 else within - grant
        eligible = sum(line.eligible for line in lines)
        categories[category] = CategoryGrant(
            category, rate, base, eligible, within, before, cap, grant, local_share, tuple(lines)
        )
    return GrantResult(MappingProxyType(categories))


@dataclass(frozen=True)
class Settlement:
    granted: int
    recomputed: int  # the grant recomputed from actual spending (実績報告)
    settled: int  # never above granted
    reduction: int  # granted − settled: to be returned or not paid


def settle_grant(granted: int, recomputed: int) -> Settlement:
    """Settle a grant from actuals: the settled grant never exceeds the granted amount."""
    problems: list[Problem] = []
    _check_money(granted, "granted", problems, label="交付決定額")
    _check_money(recomputed, "recomputed", problems, label="精算額")
    if problems:
        raise SubsidyInputError(problems)
    settled = min(granted, recomputed)
    return Settlement(granted, recomputed, settled, granted - settled)


_REQUEST_KEYS = ("body", "fiscal_year", "costs", "other_income", "allocations", "already_granted")
_BODY_CODE_RE = re.compile(r"[0-9]{6}")


def _body_code_ok(code: str) -> bool:
    """JIS X 0402: the 6th digit is (11 − Σ digit×(6,5,4,3,2) mod 11) mod 10."""
    total = sum(int(d) * w for d, w in zip(code[:5], (6, 5, 4, 3, 2)))
    return (11 - total % 11) % 10 == int(code[5])


def _money_map(data: Mapping[str, Any], key: str, problems: list[Problem]) -> dict[System, int]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        problems.append(Problem(key, "システム名をキーにした金額の一覧で指定してください。"))
        return {}
    out = _system_keys(value, key, problems)
    return {s: v for s, v in out.items() if _check_money(v, f"{key}.{s}", problems)}


def grant_from_request(
    data: Mapping[str, Any],
    population: int,
    body_kind: BodyKind | str,
    table: BaseTable,
    *,
    base_adjustments: Mapping[System, int] | None = None,
) -> dict[str, Any]:
    """Compute a body's grant from a JSON-ish request; the entry point of the CLI and the API.

    ``base_adjustments`` are signed per-system changes from union transfers (a member's are
    negative, a union's positive). Bases are the table's, unscaled: a budget-scaled run calls
    ``compute_grant`` with scaled bases instead. Raises ``SubsidyInputError`` with field paths.
    """
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise SubsidyInputError([Problem("", "リクエストはオブジェクト（キーと値の組）で指定してください。")])
    for key in data:
        if key not in _REQUEST_KEYS:
            problems.append(Problem(str(key), f"項目「{key}」は使えません（{', '.join(_REQUEST_KEYS)}）。"))
    kind = _coerce(BodyKind, body_kind, "body_kind", "団体区分「{value}」は知られていません。", problems)
    if not _is_int(population) or population < 0:
        problems.append(Problem("population", "人口は0以上の整数で指定してください。"))
    body = data.get("body")
    if not isinstance(body, str) or not _BODY_CODE_RE.fullmatch(body) or not _body_code_ok(body):
        problems.append(Problem("body", "団体コードは検査数字付きの6桁（例: 012033）で指定してください。"))
    fiscal_year = data.get("fiscal_year")
    if isinstance(fiscal_year, bool) or not isinstance(fiscal_year, int):
        problems.append(Problem("fiscal_year", "年度事業は整数（例: 2014）で指定してください。"))
        fiscal_year = None
    elif fiscal_year not in FISCAL_PROJECTS:
        years = "、".join(str(y) for y in FISCAL_PROJECTS)
        problems.append(Problem("fiscal_year", f"{fiscal_year}年度の年度事業はありません（{years}のいずれか）。"))
        fiscal_year = None
    if "costs" not in data:
        problems.append(Problem("costs", "補助対象経費（costs）がありません。"))
    costs = _money_map(data, "costs", problems)
    if "costs" in data and isinstance(data["costs"], Mapping) and not data["costs"]:
        problems.append(Problem("costs", "登録するシステムの経費を1つ以上指定してください。"))
    income = _money_map(data, "other_income", problems)
    allocations = _money_map(data, "allocations", problems)
    already: dict[Category, int] = {}
    raw_already = data.get("already_granted", {})
    if not isinstance(raw_already, Mapping):
        problems.append(Problem("already_granted", "区分名をキーにした交付済額の一覧で指定してください。"))
    else:
        for key, value in raw_already.items():
            path = f"already_granted.{key}"
            category = _coerce(Category, key, path, "区分「{value}」はありません。", problems)
            if category is not None and _check_money(value, path, problems, label="交付済額"):
                already[category] = value
    adjustments = _system_keys(base_adjustments or {}, "base_adjustments", problems)
    for system, value in adjustments.items():
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(Problem(f"base_adjustments.{system}", "移管額は円単位の整数で指定してください。"))
    named = data.get("costs") if isinstance(data.get("costs"), Mapping) else {}
    for system in income:
        if system not in named:
            problems.append(Problem(f"other_income.{system}", f"「{system}」は経費のないシステムです。"))
    if problems:
        raise SubsidyInputError(problems)

    bases: dict[System, int] = {}
    for system in costs:
        eligible = system in ELIGIBLE_SYSTEMS[kind]
        if not eligible and adjustments.get(system, 0) <= 0:
            problems.append(
                Problem(f"costs.{system}", f"「{system}」は{BODY_KIND_LABELS[kind]}の補助対象システムではありません。")
            )
            continue
        base = 0
        if eligible:
            try:
                base = base_amount(table, fiscal_year, kind, system, population).amount
            except SubsidyInputError as exc:
                problems.extend(Problem(f"costs.{system}", p.message) for p in exc.problems)
                continue
        base += adjustments.get(system, 0)
        if base < 0:
            problems.append(Problem(f"base_adjustments.{system}", f"移管後の「{system}」の基準額が0円未満になります。"))
        bases[system] = base
    if problems:
        raise SubsidyInputError(problems)
    allocated = allocate_bases(bases, allocations)
    return compute_grant(allocated, costs, income, already).as_dict()


# --------------------------------------------------------------------------------------------
# Vendor estimates (§6)


class Unit(StrEnum):
    PERSON_MONTH = "人月"
    PERSON_DAY = "人日"


class FlagCode(StrEnum):
    LUMP_SUM = "lump_sum"
    ARITHMETIC = "arithmetic"
    TOTAL_MISMATCH = "total_mismatch"
    NONCOVERED = "noncovered"
    WRONG_PHASE = "wrong_phase"
    UNIT_PRICE_ABOVE_PEERS = "unit_price_above_peers"
    EFFORT_ABOVE_PEERS = "effort_above_peers"
    COST_ABOVE_PEERS = "cost_above_peers"


@dataclass(frozen=True)
class EstimateLine:
    """One 見積 line. ``unit_price`` is yen per ``unit``; ``effort`` may be a decimal (1.5人月)."""

    phase: str
    work_item: str
    worker_class: str
    unit_price: int | None
    effort: int | Decimal | Fraction | None
    amount: int
    unit: Literal["人月", "人日"] | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.amount):
            raise TypeError("amount must be int yen")
        if self.unit_price is not None and (not _is_int(self.unit_price) or self.unit_price < 0):
            raise TypeError("unit_price must be a non-negative int or None")
        if self.effort is not None and _exact(self.effort, "effort") < 0:
            raise ValueError("effort must not be negative")
        if self.unit is not None:
            object.__setattr__(self, "unit", Unit(self.unit))

    @property
    def has_breakdown(self) -> bool:
        return self.unit_price is not None and self.effort is not None and self.unit is not None


@dataclass(frozen=True)
class EstimateFlag:
    """A reason for the reviewer to look; ``line`` is 1-based, None for the whole estimate."""

    code: FlagCode
    message: str
    line: int | None = None


@dataclass(frozen=True)
class PeerSettings:
    """How "far above peers" is judged; editable by the ministry."""

    multiple: Fraction = Fraction(3, 2)
    min_peers: int = 3
    days_per_month: int = 20


def normalize_text(text: str) -> str:
    """Fold width and case and drop spaces, so ＰＩＡ, pia and P I A compare equal."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def parse_keywords(text: str) -> tuple[str, ...]:
    """Read a keyword dictionary: one per line; blank lines and lines starting with # are skipped."""
    words = (line.strip() for line in text.removeprefix("\ufeff").splitlines())
    return tuple(dict.fromkeys(w for w in words if w and not w.startswith("#")))


def phase_of(text: str) -> Phase | None:
    """Recognise a 工程 name, including the §2 wording (システム設計, プログラム開発 …)."""
    name = unicodedata.normalize("NFKC", text).strip()
    if name in set(Phase):
        return Phase(name)
    return _PHASE_ALIASES.get(name)


def _median(values: Sequence[Fraction]) -> Fraction:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _far_above(value: Fraction, peers: Sequence[Fraction], settings: PeerSettings) -> Fraction | None:
    """Return the peer median when value is above multiple × median, else None."""
    if len(peers) < settings.min_peers:
        return None
    median = _median(peers)
    return median if value > settings.multiple * median else None


def _monthly_price(line: EstimateLine, settings: PeerSettings) -> Fraction:
    assert line.unit_price is not None
    return Fraction(line.unit_price) * (settings.days_per_month if line.unit == Unit.PERSON_DAY else 1)


def _effort_months(line: EstimateLine, settings: PeerSettings) -> Fraction:
    assert line.effort is not None
    effort = _exact(line.effort, "effort")
    return effort / settings.days_per_month if line.unit == Unit.PERSON_DAY else effort


def check_estimate(
    lines: Sequence[EstimateLine],
    *,
    fiscal_year: int,
    stated_total: int | None = None,
    noncovered_keywords: Iterable[str] = (),
    peer_unit_prices: Mapping[str, Sequence[int | Decimal | Fraction]] | None = None,
    peer_efforts: Sequence[int | Decimal | Fraction] = (),
    peer_costs: Sequence[int] = (),
    settings: PeerSettings = PeerSettings(),
) -> list[EstimateFlag]:
    """Flag what a reviewer must look at in one estimate of a fiscal-year project (slide 22).

    ``peer_unit_prices`` are other estimates' prices in 円/人月 by 作業者区分; ``peer_efforts`` (人月)
    and ``peer_costs`` (円) are totals of estimates from bodies of the same population class and
    system. Raises ``SubsidyInputError`` for an unknown fiscal-year project.
    """
    project = FISCAL_PROJECTS.get(fiscal_year)
    if project is None:
        raise SubsidyInputError([Problem("fiscal_year", f"{fiscal_year}年度の年度事業はありません。")])
    keywords = [(k, normalize_text(k)) for k in noncovered_keywords if normalize_text(k)]
    prices = {
        normalize_text(cls): [_exact(p, "peer unit price") for p in values]
        for cls, values in (peer_unit_prices or {}).items()
    }
    flags: list[EstimateFlag] = []
    for number, line in enumerate(lines, start=1):
        if not line.has_breakdown and line.amount >= 0:
            flags.append(
                EstimateFlag(
                    FlagCode.LUMP_SUM,
                    f"「{line.work_item}」は一式計上です。単価と工数（人月・人日）の内訳を求めてください。",
                    number,
                )
            )
        if line.unit_price is not None and line.effort is not None:
            expected = Fraction(line.unit_price) * _exact(line.effort, "effort")
            if expected != line.amount:
                flags.append(
                    EstimateFlag(
                        FlagCode.ARITHMETIC,
                        f"金額{_yen(line.amount)}が 単価{_yen(line.unit_price)} × 工数"
                        f"{_decimal_text(_exact(line.effort, 'effort'))}{line.unit or ''} = "
                        f"{_decimal_text(expected)}円 と合いません。",
                        number,
                    )
                )
        item = normalize_text(line.work_item)
        hits = [original for original, folded in keywords if folded in item]
        if hits:
            flags.append(
                EstimateFlag(
                    FlagCode.NONCOVERED,
                    f"「{line.work_item}」は補助対象外の作業（{'、'.join(hits)}）に当たる可能性があります。",
                    number,
                )
            )
        phase = phase_of(line.phase)
        if phase is None:
            flags.append(
                EstimateFlag(
                    FlagCode.WRONG_PHASE,
                    f"工程「{line.phase}」は補助対象の工程（{'、'.join(Phase)}）にありません。",
                    number,
                )
            )
        elif phase not in project.phases:
            owner = next(p for p in FISCAL_PROJECTS.values() if phase in p.phases)
            flags.append(
                EstimateFlag(
                    FlagCode.WRONG_PHASE,
                    f"「{phase}」は{owner.label}の工程です。{project.label}（{'、'.join(project.phases)}）"
                    "には計上できません。",
                    number,
                )
            )
        if line.unit_price is not None and line.unit is not None:
            peers = prices.get(normalize_text(line.worker_class), [])
            monthly = _monthly_price(line, settings)
            median = _far_above(monthly, peers, settings)
            if median is not None:
                flags.append(
                    EstimateFlag(
                        FlagCode.UNIT_PRICE_ABOVE_PEERS,
                        f"{line.worker_class}の単価{_yen(monthly)}/人月は、他の見積（{len(peers)}件）の中央値"
                        f"{_yen(median)}/人月の{_decimal_text(settings.multiple)}倍を超えています。",
                        number,
                    )
                )

    total = sum(line.amount for line in lines)
    if stated_total is not None and stated_total != total:
        flags.append(
            EstimateFlag(
                FlagCode.TOTAL_MISMATCH,
                f"見積合計{_yen(stated_total)}が明細の合計{_yen(total)}と合いません（差{_yen(stated_total - total)}）。",
            )
        )
    counted = [line for line in lines if line.effort is not None and line.unit is not None]
    effort = sum((_effort_months(line, settings) for line in counted), Fraction(0))
    median = _far_above(effort, [_exact(p, "peer effort") for p in peer_efforts], settings)
    if median is not None:
        flags.append(
            EstimateFlag(
                FlagCode.EFFORT_ABOVE_PEERS,
                f"総工数{_decimal_text(effort)}人月は、同じ人口規模・システムの見積（{len(peer_efforts)}件）の中央値"
                f"{_decimal_text(median)}人月の{_decimal_text(settings.multiple)}倍を超えています。",
            )
        )
    median = _far_above(Fraction(total), [_exact(p, "peer cost") for p in peer_costs], settings)
    if median is not None:
        flags.append(
            EstimateFlag(
                FlagCode.COST_ABOVE_PEERS,
                f"見積総額{_yen(total)}は、同じ人口規模・システムの見積（{len(peer_costs)}件）の中央値"
                f"{_yen(median)}の{_decimal_text(settings.multiple)}倍を超えています。",
            )
        )
    return flags


# --------------------------------------------------------------------------------------------
# Population classes (peer groups, §6)


@dataclass(frozen=True)
class PopulationClass:
    """A 人口規模 class: ``lower`` inclusive, ``upper`` exclusive (None = no limit)."""

    code: str
    label: str
    lower: int
    upper: int | None


def _people(n: int) -> str:
    return f"{n // 10_000:,}万" if n % 10_000 == 0 else f"{n:,}"


def population_classes(breakpoints: Sequence[int]) -> tuple[PopulationClass, ...]:
    """Build classes from rising breakpoints, with codes that stay the same for the same breakpoints."""
    if not breakpoints or any(b <= 0 for b in breakpoints) or any(a >= b for a, b in pairwise(breakpoints)):
        raise ValueError("breakpoints must be positive and strictly increasing")
    bounds = [0, *breakpoints]
    classes = []
    for lower, upper in zip(bounds, [*breakpoints, None]):
        if upper is None:
            classes.append(PopulationClass(f"pop_{lower}_plus", f"{_people(lower)}人以上", lower, None))
        elif lower == 0:
            classes.append(PopulationClass(f"pop_0_{upper}", f"{_people(upper)}人未満", 0, upper))
        else:
            label = f"{_people(lower)}人以上{_people(upper)}人未満"
            classes.append(PopulationClass(f"pop_{lower}_{upper}", label, lower, upper))
    return tuple(classes)


DEFAULT_POPULATION_CLASSES = population_classes((10_000, 50_000, 100_000, 300_000, 1_000_000))


def population_class(
    population: int, classes: Sequence[PopulationClass] = DEFAULT_POPULATION_CLASSES
) -> PopulationClass:
    """Return the peer class a population falls in."""
    if not _is_int(population) or population < 0:
        raise ValueError("population must be a non-negative int")
    for cls in classes:
        if cls.lower <= population and (cls.upper is None or population < cls.upper):
            return cls
    raise ValueError(f"no population class holds {population}")
