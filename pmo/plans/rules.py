"""Pure rules of plans: canonical values, parsing what staff type, validation, and derived status.

Everything here takes the date it judges on as an argument; no clock, no database, no Flask.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pmo.core import my_number
from pmo.core.dates import DateInputError, PartialDate, parse_date_input
from pmo.core.errors import Problem

DATE_FIELDS = ("planned_start", "planned_end", "actual_start", "actual_end")
DATE_LABELS = {
    "planned_start": "計画開始日", "planned_end": "計画終了日", "actual_start": "実績開始日", "actual_end": "実績終了日",
}
FIELD_LABELS = {**DATE_LABELS, "progress": "進捗率", "not_applicable_reason": "対象外理由", "comment": "備考",
                "vendor": "ベンダー名"}

NOT_STARTED, IN_PROGRESS, DONE, NOT_APPLICABLE = "not_started", "in_progress", "done", "not_applicable"
STATUS_LABELS = {NOT_STARTED: "未着手", IN_PROGRESS: "作業中", DONE: "完了", NOT_APPLICABLE: "対象外"}
STATUS_BADGES = {NOT_STARTED: "todo", IN_PROGRESS: "doing", DONE: "done", NOT_APPLICABLE: "na"}

MAX_TEXT = {"not_applicable_reason": 500, "comment": 2000, "vendor": 100}
YES_NO = ("はい", "いいえ")


@dataclass(frozen=True)
class FieldSpec:
    """A completion item's definition, as the rules need it."""

    code: str
    label: str
    field_type: str  # date / integer / text / choice / yes_no
    required: bool = True
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanValues:
    """The full state of one body's plan for one sub-task, in canonical form."""

    planned_start: PartialDate | None = None
    planned_end: PartialDate | None = None
    actual_start: PartialDate | None = None
    actual_end: PartialDate | None = None
    progress: int | None = None
    not_applicable_reason: str | None = None
    comment: str | None = None
    vendor: str | None = None
    completion: tuple[tuple[str, str], ...] = field(default=())  # (field code, canonical text), sorted

    @property
    def is_not_applicable(self) -> bool:
        return bool(self.not_applicable_reason)

    @property
    def is_empty(self) -> bool:
        return self == PlanValues()

    def completion_dict(self) -> dict[str, str]:
        return dict(self.completion)

    def to_json(self) -> dict[str, Any]:
        """Return the revision snapshot: PLAN_FIELDS keys, ISO dates and 'day'/'month' precisions."""
        out: dict[str, Any] = {}
        for name in DATE_FIELDS:
            value: PartialDate | None = getattr(self, name)
            out[name] = value.value.isoformat() if value else None
            out[f"{name}_precision"] = value.precision if value else "day"
        out.update(progress=self.progress, not_applicable_reason=self.not_applicable_reason, comment=self.comment,
                   vendor=self.vendor, completion=dict(self.completion))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PlanValues:
        """Read a revision snapshot back."""
        if not data:
            return cls()
        dates = {}
        for name in DATE_FIELDS:
            raw = data.get(name)
            dates[name] = PartialDate(dt.date.fromisoformat(raw), data.get(f"{name}_precision") or "day") if raw else None
        return cls(**dates, progress=data.get("progress"), not_applicable_reason=data.get("not_applicable_reason"),
                   comment=data.get("comment"), vendor=data.get("vendor"),
                   completion=tuple(sorted((data.get("completion") or {}).items())))

    def without_completion(self) -> PlanValues:
        return replace(self, completion=())


def status_of(values: PlanValues, as_of: dt.date) -> str:
    """Derive 未着手/作業中/完了/対象外 on ``as_of``; an end month counts from its last day."""
    if values.is_not_applicable:
        return NOT_APPLICABLE
    if values.actual_end is not None and values.actual_end.end() <= as_of:
        return DONE
    if values.actual_start is not None and values.actual_start.start() <= as_of:
        return IN_PROGRESS
    if values.progress:
        return IN_PROGRESS
    return NOT_STARTED


def done_cutoffs(as_of: dt.date) -> tuple[dt.date, dt.date]:
    """The latest stored actual end that counts as 完了 on ``as_of``: (day precision, month precision).

    A month counts from its last day, so a month is done once it has ended by ``as_of``; this is
    ``status_of``'s rule in the form a database query can compare stored dates with.
    """
    first = as_of.replace(day=1)
    if (as_of + dt.timedelta(days=1)).day == 1:  # the month ends today
        return as_of, first
    return as_of, (first - dt.timedelta(days=1)).replace(day=1)


def late_thresholds(milestone: dt.date) -> tuple[dt.date, dt.date]:
    """The earliest stored planned end that is past ``milestone``: (day precision, month precision).

    A month ends on its last day, so a planned month is late when it ends after the milestone:
    the month of the day after the milestone, or later.
    """
    after = milestone + dt.timedelta(days=1)
    return after, after.replace(day=1)


def completion_rate(statuses: Sequence[str]) -> float:
    """Return the body's 完了率: (完了 + 対象外) / all sub-tasks, 0..1."""
    if not statuses:
        return 0.0
    return sum(1 for s in statuses if s in (DONE, NOT_APPLICABLE)) / len(statuses)


# --- parsing -----------------------------------------------------------------------------------


def clean_text(value: Any) -> str | None:
    """Trim a free-text cell; '' and None become None."""
    if value is None:
        return None
    text = str(value).replace("\r\n", "\n").strip()
    return text or None


def parse_progress(value: Any) -> int | None:
    """Read 進捗率: 50, '50', '５０％', 0.5 from an Excel percentage cell; ValueError if not 0–100."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if 0 < value < 1:
            value = round(value * 100, 6)  # an Excel percentage cell holds 0.5 for 50 %
        if not float(value).is_integer():
            raise ValueError
        value = int(value)
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().rstrip("%").strip()
        if not text.isdigit():
            raise ValueError
        value = int(text)
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError
    return value


def parse_completion(spec: FieldSpec, raw: Any) -> str | None:
    """Turn one completion item input into canonical text; ValueError carries a Japanese message."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if spec.field_type == "date":
        try:
            parsed = parse_date_input(raw)
        except DateInputError as exc:
            raise ValueError(exc.message) from None
        if parsed is None:
            return None
        if parsed.precision != "day":
            raise ValueError("日まで入力してください。")
        return parsed.value.isoformat()
    text = unicodedata.normalize("NFKC", str(raw)).strip() if spec.field_type != "text" else str(raw).strip()
    if spec.field_type == "integer":
        digits = text.replace(",", "")
        if not digits.isdigit():
            raise ValueError(f"「{raw}」は0以上の整数で入力してください。")
        return str(int(digits))
    if spec.field_type == "choice":
        if text not in spec.choices:
            raise ValueError(f"「{raw}」は選択肢（{'、'.join(spec.choices)}）にありません。")
        return text
    if spec.field_type == "yes_no":
        if text not in YES_NO:
            raise ValueError("「はい」か「いいえ」を選択してください。")
        return text
    if len(text) > 500:
        raise ValueError("500文字以内で入力してください。")
    return text


def parse_values(raw: Mapping[str, Any], specs: Sequence[FieldSpec] = (), *, not_applicable: bool | None = None,
                 parse_date: Callable[[Any], PartialDate | None] = parse_date_input
                 ) -> tuple[PlanValues, list[Problem]]:
    """Parse one row as typed (screen, Excel or API) into ``PlanValues``; collect every problem.

    ``raw`` holds the DATE_FIELDS, progress, not_applicable_reason, comment, vendor and, per
    completion item, ``cf_<code>``. With ``not_applicable`` given (the screen's check box), a
    reason is required; otherwise a reason alone marks the row 対象外 (Excel, API).
    ``parse_date`` lets a bulk import pass a memoised ``parse_date_input``.
    """
    problems: list[Problem] = []
    dates: dict[str, PartialDate | None] = {}
    for name in DATE_FIELDS:
        try:
            dates[name] = parse_date(raw.get(name))
        except DateInputError as exc:
            dates[name] = None
            problems.append(Problem(name, exc.message))
    try:
        progress = parse_progress(raw.get("progress"))
    except ValueError:
        progress = None
        problems.append(Problem("progress", f"「{raw.get('progress')}」は0〜100の整数で入力してください。"))
    texts = {name: clean_text(raw.get(name)) for name in ("not_applicable_reason", "comment", "vendor")}
    for name, limit in MAX_TEXT.items():
        if texts[name] and len(texts[name]) > limit:  # type: ignore[arg-type]
            problems.append(Problem(name, f"{FIELD_LABELS[name]}は{limit}文字以内で入力してください。"))
    problems += my_number.problems_in(texts, FIELD_LABELS)  # OPT-01: never stored, never quoted
    if not_applicable is not None:
        if not_applicable and not texts["not_applicable_reason"]:
            problems.append(Problem("not_applicable_reason", "対象外とする理由を入力してください。"))
        if not not_applicable:
            texts["not_applicable_reason"] = None
    completion: list[tuple[str, str]] = []
    for spec in specs:
        if spec.field_type == "text" and my_number.contains_my_number(raw.get(f"cf_{spec.code}")):
            problems.append(Problem(f"cf_{spec.code}", f"「{spec.label}」に{my_number.MESSAGE}"))
            continue
        try:
            value = parse_completion(spec, raw.get(f"cf_{spec.code}"))
        except ValueError as exc:
            problems.append(Problem(f"cf_{spec.code}", str(exc)))
            continue
        if value is not None:
            completion.append((spec.code, value))
    values = PlanValues(**dates, progress=progress, completion=tuple(sorted(completion)), **texts)
    return values, problems


def check_values(values: PlanValues, today: dt.date, specs: Sequence[FieldSpec] = (),
                 require_completion: bool = True) -> list[Problem]:
    """Cross-field rules: end ≥ start, actuals not after ``today``, completion items on completion."""
    problems: list[Problem] = []
    if values.is_not_applicable:
        return problems
    ps, pe, ast, ae = values.planned_start, values.planned_end, values.actual_start, values.actual_end
    if ps and pe and pe.end() < ps.start():
        problems.append(Problem("planned_end", "計画終了日が計画開始日より前になっています。"))
    if ast and ae and ae.end() < ast.start():
        problems.append(Problem("actual_end", "実績終了日が実績開始日より前になっています。"))
    if ae and not ast:
        problems.append(Problem("actual_start", "実績終了日を入力する場合は、実績開始日も入力してください。"))
    today_ja = f"{today.year}年{today.month}月{today.day}日"
    if ast and ast.start() > today:
        problems.append(Problem("actual_start", f"実績開始日が今日（{today_ja}）より後になっています。"))
    if ae and ae.end() > today:
        hint = "当月中に終了した場合は日まで入力してください。" if ae.precision == "month" and ae.start() <= today else ""
        problems.append(Problem("actual_end", f"実績終了日が今日（{today_ja}）より後になっています。{hint}"))
    if require_completion and ae and ae.end() <= today:
        have = values.completion_dict()
        for spec in specs:
            if spec.required and spec.code not in have:
                problems.append(Problem(f"cf_{spec.code}", f"完了時には「{spec.label}」の入力が必要です。"))
    return problems


def changed_fields(before: PlanValues, after: PlanValues) -> list[str]:
    """Name the fields that differ (completion items as cf_<code>)."""
    names = [n for n in (*DATE_FIELDS, "progress", "not_applicable_reason", "comment", "vendor")
             if getattr(before, n) != getattr(after, n)]
    b, a = before.completion_dict(), after.completion_dict()
    names += [f"cf_{code}" for code in sorted(set(b) | set(a)) if b.get(code) != a.get(code)]
    return names


def display_value(values: PlanValues, name: str, specs: Sequence[FieldSpec] = ()) -> str:
    """Render one field as staff would type it back (2015-10-01, 2015-10, 50 …)."""
    if name.startswith("cf_"):
        return values.completion_dict().get(name[3:], "")
    value = getattr(values, name)
    if value is None:
        return ""
    if isinstance(value, PartialDate):
        return value.isoformat()
    return str(value)
