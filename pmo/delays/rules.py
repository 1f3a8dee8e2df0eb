"""Delay signals, forecasts and completion status, judged as of a date (DOMAIN.md §5).

Strictly pure: no Flask, no database, no clock, no I/O. Every function takes the date it judges on
(``as_of``, called D below) so that any past state can be replayed.

There are two implementations of the same rules:

* a scalar reference (``signals_for``, ``forecast_end``, ``derive_status`` …) that reads like the
  DOMAIN.md table and is used for one body's pages and as the oracle in the tests;
* a vectorised one (``compute_signals``, ``forecast_ends``, ``derive_statuses`` …) over a pandas
  frame of every body's sub-tasks, for the national roll-ups. A property test keeps them equal.

Readings of DOMAIN.md §5 made here (each is a rule, tested):

* Dates given to the month: a start means the first day of that month, an end the last day. This
  applies to planned *and* actual dates (an actual end "2015-10" counts as 2015-10-31, so as of
  2015-10-15 that sub-task is not yet finished). Milestones are always exact days.
* "A date after D counts as not yet happened" applies to the **actual** dates: an actual start or
  end later than D is treated as absent. Planned dates are plans and are taken as given; replaying
  the plan *as it stood* on D (from the audit trail) is the caller's job.
* A sub-task with an actual end on or before D has started, even if no actual start was entered
  (so it never gets ``late_start``).
* Slip = how late the sub-task started (actual start − planned start, never negative: an early
  start does not promise an early finish) or, if not started by D, how late it is to start
  (max(0, D − planned start)). No planned start → slip 0. Forecast end = max(planned end + slip, D).
* Chain (X-n → X-n+1 within one 作業項目, ordered by ``seq``): a sub-task's forecast end is at least
  the forecast end of every earlier sub-task of the same item that has a forecast. Finished, 対象外
  and unplanned sub-tasks have no forecast; they neither push nor stop the push (an open X-1 still
  pushes X-3 past a finished X-2).
* No planned end → no forecast. ``milestone_at_risk`` still holds for such an unfinished sub-task
  once D > milestone ("always when D > milestone"), with days = D − milestone.
* ``plan_after_milestone`` and ``finished_late`` are judged whatever the state; 対象外 has no signals.
* A progress percentage does not finish a sub-task; only an actual end does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BodyStatus",
    "DEFAULT_THRESHOLDS",
    "DatePrecision",
    "PlanFacts",
    "Severity",
    "SeverityThresholds",
    "Signal",
    "SignalKind",
    "SubtaskStatus",
    "body_status",
    "completion_rate",
    "completion_rates",
    "compute_signals",
    "derive_status",
    "derive_statuses",
    "effective_end",
    "effective_ends",
    "effective_start",
    "effective_starts",
    "evaluate",
    "explain",
    "explain_frame",
    "forecast_chain",
    "forecast_end",
    "forecast_ends",
    "format_date_ja",
    "severity_for",
    "signals_for",
    "signals_for_chain",
]


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


class SignalKind(StrEnum):
    """A kind of delay signal; the member order is the order signals are listed in."""

    NO_PLAN = "no_plan"
    PLAN_AFTER_MILESTONE = "plan_after_milestone"
    LATE_START = "late_start"
    LATE_FINISH = "late_finish"
    FINISHED_LATE = "finished_late"
    MILESTONE_AT_RISK = "milestone_at_risk"

    @property
    def label(self) -> str:
        """Return the Japanese label."""
        return SIGNAL_LABELS[self]


SIGNAL_LABELS: dict[SignalKind, str] = {
    SignalKind.NO_PLAN: "計画未入力",
    SignalKind.PLAN_AFTER_MILESTONE: "計画終了がマイルストーン超過",
    SignalKind.LATE_START: "着手遅れ",
    SignalKind.LATE_FINISH: "完了遅れ",
    SignalKind.FINISHED_LATE: "遅延完了",
    SignalKind.MILESTONE_AT_RISK: "マイルストーン未達のおそれ",
}


class Severity(IntEnum):
    """How bad a signal is; ordered, so ``max()`` gives the worst. ``code`` is the stable English code."""

    NOTICE = 1
    DELAYED = 2
    CRITICAL = 3

    @property
    def code(self) -> str:
        """Return the English code: ``notice``, ``delayed`` or ``critical``."""
        return self.name.lower()

    @property
    def label(self) -> str:
        """Return the Japanese label: 注意, 遅延 or 重大."""
        return SEVERITY_LABELS[self]

    @classmethod
    def from_code(cls, code: str) -> Severity:
        """Return the member whose English code is ``code``."""
        return cls[code.upper()]


SEVERITY_LABELS: dict[Severity, str] = {
    Severity.NOTICE: "注意",
    Severity.DELAYED: "遅延",
    Severity.CRITICAL: "重大",
}
SEVERITY_CODES: tuple[str, ...] = tuple(s.code for s in Severity)
SEVERITY_DTYPE = pd.CategoricalDtype(list(SEVERITY_CODES), ordered=True)
SIGNAL_DTYPE = pd.CategoricalDtype([k.value for k in SignalKind], ordered=True)


class BodyStatus(StrEnum):
    """A body's overall state: its worst signal, or on track when it has none."""

    ON_TRACK = "on_track"
    NOTICE = "notice"
    DELAYED = "delayed"
    CRITICAL = "critical"

    @property
    def label(self) -> str:
        """Return the Japanese label."""
        return BODY_STATUS_LABELS[self]


BODY_STATUS_LABELS: dict[BodyStatus, str] = {
    BodyStatus.ON_TRACK: "順調",
    BodyStatus.NOTICE: "注意",
    BodyStatus.DELAYED: "遅延",
    BodyStatus.CRITICAL: "重大",
}
BODY_STATUS_DTYPE = pd.CategoricalDtype([s.value for s in BodyStatus], ordered=True)


class SubtaskStatus(StrEnum):
    """A sub-task's status as of a date (DOMAIN.md §5)."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    NOT_APPLICABLE = "not_applicable"

    @property
    def label(self) -> str:
        """Return the Japanese label."""
        return SUBTASK_STATUS_LABELS[self]


SUBTASK_STATUS_LABELS: dict[SubtaskStatus, str] = {
    SubtaskStatus.NOT_STARTED: "未着手",
    SubtaskStatus.IN_PROGRESS: "作業中",
    SubtaskStatus.DONE: "完了",
    SubtaskStatus.NOT_APPLICABLE: "対象外",
}
SUBTASK_STATUS_DTYPE = pd.CategoricalDtype([s.value for s in SubtaskStatus])


class DatePrecision(StrEnum):
    """How precisely a date was given."""

    DAY = "day"
    MONTH = "month"


# --------------------------------------------------------------------------------------------
# Severity
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeverityThresholds:
    """Settings that turn a signal into a severity.

    Day-counted signals (``plan_after_milestone``, ``late_start``, ``late_finish``,
    ``finished_late``) are 注意 below ``delayed_days``, 遅延 from ``delayed_days`` and 重大 from
    ``critical_days`` (defaults 30 and 90 calendar days: one month late is a delay, a quarter is
    critical). Every such signal has days ≥ 1, so it is at least 注意.

    ``no_plan`` has a fixed severity (default 遅延: an unplanned sub-task cannot be checked at all).
    ``finished_late`` is capped at ``finished_late_cap`` (default 注意): the work is done, so it
    should not keep a finished body in the 重大 list for ever. ``milestone_at_risk`` is always 重大.
    """

    delayed_days: int = 30
    critical_days: int = 90
    no_plan: Severity = Severity.DELAYED
    finished_late_cap: Severity = Severity.NOTICE

    def __post_init__(self) -> None:
        if not 1 <= self.delayed_days <= self.critical_days:
            raise ValueError("need 1 <= delayed_days <= critical_days")


DEFAULT_THRESHOLDS = SeverityThresholds()


def _severity_by_days(days: int, thresholds: SeverityThresholds) -> Severity:
    if days >= thresholds.critical_days:
        return Severity.CRITICAL
    if days >= thresholds.delayed_days:
        return Severity.DELAYED
    return Severity.NOTICE


def severity_for(
    kind: SignalKind, days: int | None, thresholds: SeverityThresholds = DEFAULT_THRESHOLDS
) -> Severity:
    """Return the severity of a signal of ``kind`` that is ``days`` calendar days late."""
    if kind is SignalKind.MILESTONE_AT_RISK:
        return Severity.CRITICAL
    if kind is SignalKind.NO_PLAN:
        return thresholds.no_plan
    if days is None:
        raise ValueError(f"{kind} needs days")
    severity = _severity_by_days(days, thresholds)
    if kind is SignalKind.FINISHED_LATE:
        severity = min(severity, thresholds.finished_late_cap)
    return severity


# --------------------------------------------------------------------------------------------
# Date precision
# --------------------------------------------------------------------------------------------


def _as_date(value: dt.date | None) -> dt.date | None:
    if isinstance(value, dt.datetime):  # also pandas.Timestamp
        return value.date()
    return value


def effective_start(value: dt.date | None, precision: str | None = DatePrecision.DAY) -> dt.date | None:
    """Return the day a start date means: the first day of its month if given to the month."""
    value = _as_date(value)
    if value is None or precision != DatePrecision.MONTH:
        return value
    return value.replace(day=1)


def effective_end(value: dt.date | None, precision: str | None = DatePrecision.DAY) -> dt.date | None:
    """Return the day an end date means: the last day of its month if given to the month."""
    value = _as_date(value)
    if value is None or precision != DatePrecision.MONTH:
        return value
    first_of_next = dt.date(value.year + value.month // 12, value.month % 12 + 1, 1)
    return first_of_next - dt.timedelta(days=1)


def _to_days(values: Any) -> np.ndarray:
    """Return ``values`` (datetime64 array/Series, or dates with None) as datetime64[D]."""
    if isinstance(values, pd.Series | pd.Index):
        if not pd.api.types.is_datetime64_dtype(values.dtype):
            values = pd.to_datetime(values)
        return np.asarray(values.to_numpy()).astype("datetime64[D]")
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = pd.to_datetime(pd.Series(arr)).to_numpy()
    return arr.astype("datetime64[D]")


def _month_mask(precision: Any, n: int) -> np.ndarray:
    if precision is None or isinstance(precision, str):
        return np.full(n, precision == DatePrecision.MONTH)
    if isinstance(precision, pd.Series | pd.Index):
        precision = precision.to_numpy(dtype=object)  # object compare beats pandas' str dtype here
    return np.asarray(precision, dtype=object) == DatePrecision.MONTH.value


def _replace_where(
    days: np.ndarray, mask: np.ndarray, convert: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    # Month arithmetic in numpy is calendar work; only do it for the rows given to the month.
    if not mask.any():
        return days
    out = days.copy()
    out[mask] = convert(days[mask])
    return out


def _first_of_month(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[M]").astype("datetime64[D]")


def _last_of_month(days: np.ndarray) -> np.ndarray:
    return (days.astype("datetime64[M]") + 1).astype("datetime64[D]") - np.timedelta64(1, "D")


def effective_starts(values: Any, precision: Any = DatePrecision.DAY) -> np.ndarray:
    """Vectorised ``effective_start``: datetime64[D] array; ``precision`` is one str or one per value."""
    days = _to_days(values)
    return _replace_where(days, _month_mask(precision, len(days)), _first_of_month)


def effective_ends(values: Any, precision: Any = DatePrecision.DAY) -> np.ndarray:
    """Vectorised ``effective_end``: datetime64[D] array; ``precision`` is one str or one per value."""
    days = _to_days(values)
    return _replace_where(days, _month_mask(precision, len(days)), _last_of_month)


# --------------------------------------------------------------------------------------------
# Scalar reference implementation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanFacts:
    """What is recorded for one sub-task of one body (dates as entered, with their precision)."""

    planned_start: dt.date | None
    planned_end: dt.date | None
    actual_start: dt.date | None = None
    actual_end: dt.date | None = None
    milestone: dt.date | None = None
    not_applicable: bool = False
    subtask: str = ""
    planned_start_precision: str = DatePrecision.DAY
    planned_end_precision: str = DatePrecision.DAY
    actual_start_precision: str = DatePrecision.DAY
    actual_end_precision: str = DatePrecision.DAY


@dataclass(frozen=True)
class _Known:
    """The facts as they stood on D: effective days, actual dates after D dropped."""

    planned_start: dt.date | None
    planned_end: dt.date | None
    actual_start: dt.date | None
    actual_end: dt.date | None

    @property
    def finished(self) -> bool:
        return self.actual_end is not None

    @property
    def started(self) -> bool:
        return self.actual_start is not None or self.actual_end is not None


def _known(facts: PlanFacts, as_of: dt.date) -> _Known:
    actual_start = effective_start(facts.actual_start, facts.actual_start_precision)
    actual_end = effective_end(facts.actual_end, facts.actual_end_precision)
    return _Known(
        planned_start=effective_start(facts.planned_start, facts.planned_start_precision),
        planned_end=effective_end(facts.planned_end, facts.planned_end_precision),
        actual_start=actual_start if actual_start is not None and actual_start <= as_of else None,
        actual_end=actual_end if actual_end is not None and actual_end <= as_of else None,
    )


def format_date_ja(value: dt.date) -> str:
    """Return ``value`` as 2015年10月5日."""
    return f"{value.year}年{value.month}月{value.day}日"


def explain(
    kind: SignalKind | str,
    subtask: str,
    days: int | None = None,
    milestone: dt.date | None = None,
) -> str:
    """Return the Japanese sentence for one signal of ``subtask``."""
    kind = SignalKind(kind)
    ms = f"マイルストーン({format_date_ja(milestone)})" if milestone is not None else "マイルストーン"
    if kind is SignalKind.NO_PLAN:
        return f"{subtask} の計画終了日が入力されていません"
    if kind is SignalKind.PLAN_AFTER_MILESTONE:
        return f"{subtask} の計画終了日が{ms}を{days}日超えています"
    if kind is SignalKind.LATE_START:
        return f"{subtask} は計画開始日を{days}日過ぎても着手していません"
    if kind is SignalKind.LATE_FINISH:
        return f"{subtask} は計画終了日を{days}日過ぎても完了していません"
    if kind is SignalKind.FINISHED_LATE:
        return f"{subtask} は計画終了日より{days}日遅れて完了しました"
    if milestone is not None and days is not None:
        forecast = format_date_ja(milestone + dt.timedelta(days=days))
        return f"{subtask} の完了見込み({forecast})が{ms}を{days}日超えています"
    return f"{subtask} はマイルストーンまでに完了しない見込みです"


@dataclass(frozen=True)
class Signal:
    """One delay signal: its kind, calendar days late (None for ``no_plan``) and severity."""

    kind: SignalKind
    days: int | None
    severity: Severity
    milestone: dt.date | None = None

    @property
    def forecast_end(self) -> dt.date | None:
        """Return the forecast end for ``milestone_at_risk`` (milestone + days), else None."""
        if self.kind is not SignalKind.MILESTONE_AT_RISK or self.milestone is None or self.days is None:
            return None
        return self.milestone + dt.timedelta(days=self.days)

    def explain(self, subtask: str) -> str:
        """Return the Japanese sentence for this signal of ``subtask``."""
        return explain(self.kind, subtask, self.days, self.milestone)


def forecast_end(
    facts: PlanFacts, as_of: dt.date, predecessor_forecast: dt.date | None = None
) -> dt.date | None:
    """Return the forecast end of an unfinished, planned sub-task as of ``as_of``, else None.

    ``predecessor_forecast`` is the pushed forecast end of the previous sub-task in the chain.
    """
    if facts.not_applicable:
        return None
    as_of = _as_date(as_of)
    known = _known(facts, as_of)
    if known.finished or known.planned_end is None:
        return None
    slip = 0
    if known.planned_start is not None:
        reference = known.actual_start if known.actual_start is not None else as_of
        slip = max(0, (reference - known.planned_start).days)
    forecast = max(known.planned_end + dt.timedelta(days=slip), as_of)
    if predecessor_forecast is not None and predecessor_forecast > forecast:
        forecast = predecessor_forecast
    return forecast


def forecast_chain(chain: Sequence[PlanFacts], as_of: dt.date) -> list[dt.date | None]:
    """Return the pushed forecast end of each sub-task of one 作業項目, given in order X-1, X-2, …"""
    forecasts: list[dt.date | None] = []
    running: dt.date | None = None
    for facts in chain:
        forecast = forecast_end(facts, as_of, running)
        if forecast is not None:
            running = forecast
        forecasts.append(forecast)
    return forecasts


def signals_for(
    facts: PlanFacts,
    as_of: dt.date,
    thresholds: SeverityThresholds = DEFAULT_THRESHOLDS,
    *,
    predecessor_forecast: dt.date | None = None,
) -> list[Signal]:
    """Return every delay signal that holds for one sub-task on ``as_of``, in ``SignalKind`` order.

    Pass ``predecessor_forecast`` (from ``forecast_chain``) to apply the chain push; without it the
    sub-task is judged on its own. ``signals_for_chain`` does this for a whole 作業項目.
    """
    if facts.not_applicable:
        return []
    as_of = _as_date(as_of)
    known = _known(facts, as_of)
    ps, pe, ae, ms = known.planned_start, known.planned_end, known.actual_end, facts.milestone
    found: list[tuple[SignalKind, int | None]] = []
    if pe is None:
        found.append((SignalKind.NO_PLAN, None))
    if pe is not None and ms is not None and pe > ms:
        found.append((SignalKind.PLAN_AFTER_MILESTONE, (pe - ms).days))
    if ps is not None and ps < as_of and not known.started:
        found.append((SignalKind.LATE_START, (as_of - ps).days))
    if pe is not None and pe < as_of and ae is None:
        found.append((SignalKind.LATE_FINISH, (as_of - pe).days))
    if ae is not None and pe is not None and ae > pe:
        found.append((SignalKind.FINISHED_LATE, (ae - pe).days))
    if ae is None and ms is not None:
        forecast = forecast_end(facts, as_of, predecessor_forecast)
        if forecast is not None and forecast > ms:
            found.append((SignalKind.MILESTONE_AT_RISK, (forecast - ms).days))
        elif forecast is None and as_of > ms:
            found.append((SignalKind.MILESTONE_AT_RISK, (as_of - ms).days))
    return [Signal(kind, days, severity_for(kind, days, thresholds), ms) for kind, days in found]


def signals_for_chain(
    chain: Sequence[PlanFacts], as_of: dt.date, thresholds: SeverityThresholds = DEFAULT_THRESHOLDS
) -> list[list[Signal]]:
    """Return the signals of each sub-task of one 作業項目 (given in order), with the chain push."""
    out: list[list[Signal]] = []
    running: dt.date | None = None
    for facts in chain:
        out.append(signals_for(facts, as_of, thresholds, predecessor_forecast=running))
        forecast = forecast_end(facts, as_of, running)
        if forecast is not None:
            running = forecast
    return out


def derive_status(facts: PlanFacts, as_of: dt.date) -> SubtaskStatus:
    """Return 未着手 / 作業中 / 完了 / 対象外 for one sub-task as of ``as_of``."""
    if facts.not_applicable:
        return SubtaskStatus.NOT_APPLICABLE
    known = _known(facts, _as_date(as_of))
    if known.finished:
        return SubtaskStatus.DONE
    if known.actual_start is not None:
        return SubtaskStatus.IN_PROGRESS
    return SubtaskStatus.NOT_STARTED


def completion_rate(statuses: Iterable[SubtaskStatus | str]) -> float | None:
    """Return (完了 + 対象外) / all sub-tasks, or None when there are none."""
    statuses = list(statuses)
    if not statuses:
        return None
    closed = sum(s in (SubtaskStatus.DONE, SubtaskStatus.NOT_APPLICABLE) for s in statuses)
    return closed / len(statuses)


# --------------------------------------------------------------------------------------------
# Vectorised implementation
# --------------------------------------------------------------------------------------------

_NAT = np.datetime64("NaT", "D")
_DATE_COLUMNS = ("planned_start", "planned_end", "actual_start", "actual_end")


@dataclass(frozen=True)
class _Frame:
    """Whole-column arrays of a plans frame as they stood on D."""

    as_of: np.datetime64
    applicable: np.ndarray
    planned_start: np.ndarray
    planned_end: np.ndarray
    actual_start: np.ndarray
    actual_end: np.ndarray
    milestone: np.ndarray


def _precision_column(plans: pd.DataFrame, column: str) -> Any:
    return plans[f"{column}_precision"] if f"{column}_precision" in plans.columns else DatePrecision.DAY


def _prepare(plans: pd.DataFrame, as_of: dt.date) -> _Frame:
    d = np.datetime64(_as_date(as_of), "D")
    actual_start = effective_starts(plans["actual_start"], _precision_column(plans, "actual_start"))
    actual_end = effective_ends(plans["actual_end"], _precision_column(plans, "actual_end"))
    # A date after D has not happened yet (NaT compares False, so NaT stays NaT).
    actual_start = np.where(actual_start <= d, actual_start, _NAT)
    actual_end = np.where(actual_end <= d, actual_end, _NAT)
    if "not_applicable" in plans.columns:
        not_applicable = plans["not_applicable"].to_numpy(dtype=bool, na_value=False)
    else:
        not_applicable = np.zeros(len(plans), dtype=bool)
    return _Frame(
        as_of=d,
        applicable=~not_applicable,
        planned_start=effective_starts(plans["planned_start"], _precision_column(plans, "planned_start")),
        planned_end=effective_ends(plans["planned_end"], _precision_column(plans, "planned_end")),
        actual_start=actual_start,
        actual_end=actual_end,
        milestone=_to_days(plans["milestone"]),
    )


def _days_between(later: np.ndarray, earlier: np.ndarray | np.datetime64) -> np.ndarray:
    return (later - earlier).astype("timedelta64[D]").astype(np.int64)


def _body_ids(plans: pd.DataFrame) -> np.ndarray:
    """Return a small integer per body (hashing integer ids when the frame has them: cheaper)."""
    if "body_id" in plans.columns and pd.api.types.is_integer_dtype(plans["body_id"].dtype):
        ids, _ = pd.factorize(plans["body_id"].to_numpy(dtype=np.int64))
    else:
        ids, _ = pd.factorize(plans["body_code"].to_numpy(dtype=object))
    return ids


def _chain_keys(plans: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return (group id per row for (body_code, item), row order by seq)."""
    body_ids = _body_ids(plans)
    item_ids, item_uniques = pd.factorize(plans["item"].to_numpy(dtype=object))
    group = body_ids.astype(np.int64) * max(len(item_uniques), 1) + item_ids
    order = np.argsort(plans["seq"].to_numpy(dtype=np.int64), kind="stable")
    return group, order


def _forecasts(plans: pd.DataFrame, f: _Frame, chain: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    planned_start, planned_end = f.planned_start, f.planned_end
    has_own = f.applicable & np.isnat(f.actual_end) & ~np.isnat(planned_end)
    reference = np.where(np.isnat(f.actual_start), f.as_of, f.actual_start)
    slip = np.where(np.isnat(planned_start), 0, np.maximum(_days_between(reference, planned_start), 0))
    own = np.maximum(planned_end + slip.astype("timedelta64[D]"), f.as_of)
    own = np.where(has_own, own, _NAT)
    # Chain push: a running max in seq order per (body, item). NaT is int64's minimum, so it never wins.
    group, order = chain if chain is not None else _chain_keys(plans)
    ints = own.view(np.int64)
    running = pd.Series(ints[order]).groupby(group[order], sort=False).cummax().to_numpy(dtype=np.int64)
    pushed = np.empty_like(ints)
    pushed[order] = running
    return np.where(has_own, pushed.view("datetime64[D]"), _NAT)


def forecast_ends(plans: pd.DataFrame, as_of: dt.date) -> pd.Series:
    """Vectorised ``forecast_chain``: the pushed forecast end per row (NaT when none), same index."""
    forecasts = _forecasts(plans, _prepare(plans, as_of))
    return pd.Series(forecasts.astype("datetime64[s]"), index=plans.index, name="forecast_end")


def compute_signals(
    plans: pd.DataFrame, as_of: dt.date, thresholds: SeverityThresholds = DEFAULT_THRESHOLDS
) -> pd.DataFrame:
    """Return one row per (body, sub-task, signal) holding on ``as_of`` for a frame of plans.

    Input columns, one row per (body, sub-task):

    ============================  =================================================================
    ``body_code``                 str, 6-digit 団体コード
    ``subtask``                   str, e.g. ``"B-2"``
    ``item``                      str, the 作業項目 letter, e.g. ``"B"`` (the chain runs within it)
    ``seq``                       int, order within the item (X-n precedes X-n+1)
    ``milestone``                 datetime64, the date the sub-task must be finished by (NaT: none)
    ``planned_start``             datetime64, NaT when missing; likewise ``planned_end``,
                                  ``actual_start``, ``actual_end``
    ``<date column>_precision``   optional, ``"day"`` or ``"month"`` per row (missing column or
                                  null = day), e.g. ``planned_end_precision``
    ``not_applicable``            optional bool, 対象外 (missing column = all applicable)
    ============================  =================================================================

    Output columns: ``body_code``, ``subtask``, ``item``, ``signal`` (categorical of
    ``SignalKind`` values), ``days`` (``Int64``, NA for ``no_plan``), ``severity`` (ordered
    categorical of ``Severity`` codes) and ``milestone`` (datetime64, for the sentences). Rows come
    in input row order, then ``SignalKind`` order, like ``signals_for``.
    """
    f = _prepare(plans, as_of)
    return _signal_frame(plans, f, *_signal_rows(f, _forecasts(plans, f), thresholds))


def _signal_rows(
    f: _Frame, forecast: np.ndarray, thresholds: SeverityThresholds
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (row, kind code, days, severity) of every signal, in row then ``SignalKind`` order."""
    d, ok = f.as_of, f.applicable
    ps, pe, ae, ms = f.planned_start, f.planned_end, f.actual_end, f.milestone
    has_pe, finished = ~np.isnat(pe), ~np.isnat(ae)
    started = ~np.isnat(f.actual_start) | finished
    at_risk_to = np.where(np.isnat(forecast), d, forecast)
    # NaT compares False everywhere, which drops rows lacking the dates a signal needs.
    rules: list[tuple[SignalKind, np.ndarray, Callable[[], np.ndarray] | None]] = [
        (SignalKind.NO_PLAN, ok & ~has_pe, None),
        (SignalKind.PLAN_AFTER_MILESTONE, ok & (pe > ms), lambda: _days_between(pe, ms)),
        (SignalKind.LATE_START, ok & (ps < d) & ~started, lambda: _days_between(d, ps)),
        (SignalKind.LATE_FINISH, ok & (pe < d) & ~finished, lambda: _days_between(d, pe)),
        (SignalKind.FINISHED_LATE, ok & (ae > pe), lambda: _days_between(ae, pe)),
        (
            SignalKind.MILESTONE_AT_RISK,
            ok & ~finished & (at_risk_to > ms),
            lambda: _days_between(at_risk_to, ms),
        ),
    ]
    rows_parts, kind_parts, days_parts = [], [], []
    for code, (kind, mask, days_of) in enumerate(rules):
        rows = np.flatnonzero(mask)
        rows_parts.append(rows)
        kind_parts.append(np.full(len(rows), code, dtype=np.int8))
        days_parts.append(days_of()[rows] if days_of is not None else np.zeros(len(rows), dtype=np.int64))
    rows = np.concatenate(rows_parts)
    kinds = np.concatenate(kind_parts)
    days = np.concatenate(days_parts)
    order = np.lexsort((kinds, rows))
    rows, kinds, days = rows[order], kinds[order], days[order]

    kind_no_plan = list(SignalKind).index(SignalKind.NO_PLAN)
    kind_at_risk = list(SignalKind).index(SignalKind.MILESTONE_AT_RISK)
    kind_finished_late = list(SignalKind).index(SignalKind.FINISHED_LATE)
    severity = np.where(
        days >= thresholds.critical_days,
        int(Severity.CRITICAL),
        np.where(days >= thresholds.delayed_days, int(Severity.DELAYED), int(Severity.NOTICE)),
    )
    capped = np.minimum(severity, int(thresholds.finished_late_cap))
    severity = np.where(kinds == kind_finished_late, capped, severity)
    severity = np.where(kinds == kind_no_plan, int(thresholds.no_plan), severity)
    severity = np.where(kinds == kind_at_risk, int(Severity.CRITICAL), severity)

    return rows, kinds, days, severity


def _signal_frame(
    plans: pd.DataFrame, f: _Frame, rows: np.ndarray, kinds: np.ndarray, days: np.ndarray, severity: np.ndarray
) -> pd.DataFrame:
    kind_no_plan = list(SignalKind).index(SignalKind.NO_PLAN)
    return pd.DataFrame(
        {
            "body_code": plans["body_code"].array.take(rows),
            "subtask": plans["subtask"].array.take(rows),
            "item": plans["item"].array.take(rows),
            "signal": pd.Categorical.from_codes(kinds, dtype=SIGNAL_DTYPE),
            "days": pd.arrays.IntegerArray(days, kinds == kind_no_plan),
            "severity": pd.Categorical.from_codes(severity - 1, dtype=SEVERITY_DTYPE),
            "milestone": f.milestone[rows].astype("datetime64[s]"),
        }
    )


def explain_frame(signals: pd.DataFrame) -> pd.Series:
    """Return the Japanese sentence of each row of a ``compute_signals`` frame (for display)."""
    if "milestone" in signals.columns:
        milestones = signals["milestone"]
    else:
        milestones = pd.Series(pd.NaT, index=signals.index)
    sentences = [
        explain(
            kind,
            subtask,
            None if pd.isna(days) else int(days),
            None if pd.isna(milestone) else milestone.date(),
        )
        for kind, subtask, days, milestone in zip(
            signals["signal"], signals["subtask"], signals["days"], milestones, strict=True
        )
    ]
    return pd.Series(sentences, index=signals.index, name="explanation", dtype=object)


def body_status(signals: pd.DataFrame, body_codes: Iterable[str] | None = None) -> pd.DataFrame:
    """Return each body's worst severity (``status``) and its number of signals.

    Bodies in ``body_codes`` without any signal are ``on_track``; without ``body_codes`` only the
    bodies present in ``signals`` are listed. Columns: ``body_code``, ``status`` (ordered categorical
    of ``BodyStatus`` values), ``signal_count``.
    """
    codes = signals["severity"].astype(SEVERITY_DTYPE).cat.codes.to_numpy() + 1  # 0 = on track
    grouped = pd.Series(codes).groupby(signals["body_code"].to_numpy(), sort=True)
    worst = grouped.max()
    count = grouped.size()
    if body_codes is not None:
        index = pd.Index(list(dict.fromkeys(body_codes)))
        worst = worst.reindex(index, fill_value=0)
        count = count.reindex(index, fill_value=0)
    return pd.DataFrame(
        {
            "body_code": worst.index.to_numpy(),
            "status": pd.Categorical.from_codes(worst.to_numpy(dtype=np.int64), dtype=BODY_STATUS_DTYPE),
            "signal_count": count.to_numpy(dtype=np.int64),
        }
    )


def _status_codes(f: _Frame) -> np.ndarray:
    # Codes follow SubtaskStatus order: not_started, in_progress, done, not_applicable.
    return np.select(
        [~f.applicable, ~np.isnat(f.actual_end), ~np.isnat(f.actual_start)],
        [3, 2, 1],
        default=0,
    ).astype(np.int8)


def derive_statuses(plans: pd.DataFrame, as_of: dt.date) -> pd.Series:
    """Vectorised ``derive_status``: a categorical of ``SubtaskStatus`` values, same index as ``plans``."""
    codes = _status_codes(_prepare(plans, as_of))
    return pd.Series(
        pd.Categorical.from_codes(codes, dtype=SUBTASK_STATUS_DTYPE), index=plans.index, name="status"
    )


def completion_rates(plans: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Return per body the count of each status, ``total`` and ``rate`` = (完了 + 対象外) / total.

    Columns: ``body_code``, ``not_started``, ``in_progress``, ``done``, ``not_applicable``,
    ``total``, ``rate`` (float), one row per body in order of first appearance.
    """
    codes = _status_codes(_prepare(plans, as_of)).astype(np.int64)
    body_ids, bodies = pd.factorize(plans["body_code"].to_numpy(dtype=object))
    n_bodies = len(bodies)
    counts = np.bincount(body_ids * 4 + codes, minlength=n_bodies * 4).reshape(n_bodies, 4)
    out = pd.DataFrame(counts, columns=[s.value for s in SubtaskStatus])
    out.insert(0, "body_code", np.asarray(bodies))
    out["total"] = counts.sum(axis=1)
    out["rate"] = (out["done"] + out["not_applicable"]) / out["total"]
    return out


@dataclass(frozen=True)
class Evaluation:
    """Everything judged on one date for a plans frame, computed from one pass over its columns."""

    signals: pd.DataFrame  # as ``compute_signals``
    signal_rows: np.ndarray  # the plans row of each signal
    statuses: pd.Series  # as ``derive_statuses``
    forecast_end: pd.Series  # as ``forecast_ends``
    rates: pd.DataFrame  # as ``completion_rates``


def evaluate(
    plans: pd.DataFrame, as_of: dt.date, thresholds: SeverityThresholds = DEFAULT_THRESHOLDS
) -> Evaluation:
    """Return signals, statuses, forecasts and completion rates at once (same results as the four functions).

    The national screens need all four; this prepares the dates and the chain keys once.
    """
    f = _prepare(plans, as_of)
    chain = _chain_keys(plans)
    forecast = _forecasts(plans, f, chain)
    rows, kinds, days, severity = _signal_rows(f, forecast, thresholds)
    signals = _signal_frame(plans, f, rows, kinds, days, severity)
    codes = _status_codes(f)
    statuses = pd.Series(pd.Categorical.from_codes(codes, dtype=SUBTASK_STATUS_DTYPE), index=plans.index, name="status")
    body_ids = _body_ids(plans)
    n_bodies = int(body_ids.max()) + 1 if len(body_ids) else 0
    counts = np.bincount(body_ids * 4 + codes.astype(np.int64), minlength=n_bodies * 4).reshape(n_bodies, 4)
    first_row = np.full(n_bodies, -1, dtype=np.int64)
    first_row[body_ids[::-1]] = np.arange(len(body_ids))[::-1]
    rates = pd.DataFrame(counts, columns=[s.value for s in SubtaskStatus])
    rates.insert(0, "body_code", plans["body_code"].to_numpy(dtype=object)[first_row])
    rates["total"] = counts.sum(axis=1)
    rates["rate"] = (rates["done"] + rates["not_applicable"]) / rates["total"]
    return Evaluation(
        signals=signals, signal_rows=rows, statuses=statuses,
        forecast_end=pd.Series(forecast.astype("datetime64[s]"), index=plans.index, name="forecast_end"),
        rates=rates,
    )
