"""Delay use cases: load every plan as it stood on a date, judge it with ``rules``, within the actor's scope.

The loader builds the frame ``rules.compute_signals`` expects with a handful of column queries (no ORM
objects): the bodies in scope × the sub-tasks that apply to their kind under the catalog version in
force on D, left-joined with each plan's state on D. A plan's state on a past D is its newest
``PlanRevision`` recorded on or before D (end of day, Japan time); a plan without any revision is taken
as it stands now; a plan whose first revision is after D did not exist yet. Sub-tasks that apply but
have no plan row are in the frame with empty dates, so they raise ``no_plan``.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import asdict, dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Date, Integer, String, case, func, literal_column, or_, select, union_all
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from pmo.accounts.permissions import Actor, Permission, visible_prefecture
from pmo.audit import service as audit
from pmo.catalog import service as catalog
from pmo.core import clock
from pmo.core.errors import NotFound, PermissionDenied, ValidationFailed
from pmo.delays import rules
from pmo.orgs.models import Body, BodyKind
from pmo.orgs.service import POPULATION_CLASSES
from pmo.plans.models import MonthlySnapshot, Plan, PlanRevision, SnapshotRow
from pmo.settings.service import get_setting, set_setting

THRESHOLDS_KEY = "delays.thresholds"
DATE_COLUMNS = ("planned_start", "planned_end", "actual_start", "actual_end")
PRECISION_COLUMNS = tuple(f"{c}_precision" for c in DATE_COLUMNS)
EARLIEST_AS_OF = dt.date(2013, 1, 1)
LATEST_AS_OF = dt.date(2030, 12, 31)


# --- settings ----------------------------------------------------------------------------------


def get_thresholds(session: Session) -> rules.SeverityThresholds:
    """Return the severity thresholds in force (the setting, or the defaults)."""
    raw = get_setting(session, THRESHOLDS_KEY) or {}
    try:
        return rules.SeverityThresholds(
            delayed_days=int(raw.get("delayed_days", rules.DEFAULT_THRESHOLDS.delayed_days)),
            critical_days=int(raw.get("critical_days", rules.DEFAULT_THRESHOLDS.critical_days)),
            no_plan=rules.Severity.from_code(raw.get("no_plan", rules.DEFAULT_THRESHOLDS.no_plan.code)),
            finished_late_cap=rules.Severity.from_code(
                raw.get("finished_late_cap", rules.DEFAULT_THRESHOLDS.finished_late_cap.code)
            ),
        )
    except (KeyError, ValueError, TypeError):
        return rules.DEFAULT_THRESHOLDS


def set_thresholds(session: Session, actor: Actor, thresholds: rules.SeverityThresholds) -> None:
    """Store new severity thresholds and audit the change."""
    from pmo.accounts.models import Role

    if actor.role is not Role.SYSTEM_ADMIN:
        raise PermissionDenied("判定基準を変更する権限がありません。")
    before = get_setting(session, THRESHOLDS_KEY)
    value = {
        "delayed_days": thresholds.delayed_days, "critical_days": thresholds.critical_days,
        "no_plan": thresholds.no_plan.code, "finished_late_cap": thresholds.finished_late_cap.code,
    }
    set_setting(session, THRESHOLDS_KEY, value)
    audit.record(session, actor, "delays.thresholds_changed", target_type="setting", target_id=THRESHOLDS_KEY,
                 before=before, after=value)


# --- the as-of date ----------------------------------------------------------------------------


def parse_as_of(raw: str | None, default: dt.date, field: str = "as_of") -> dt.date:
    """Parse an as-of date (2015-12-01, 2015/12/1, full-width digits); empty gives ``default``.

    :raise ValidationFailed: with a Japanese message naming the field and the value.
    """
    from pmo.core.errors import Problem

    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        return default
    for sep in ("/", "."):
        text = text.replace(sep, "-")
    parts = text.split("-")
    try:
        if len(parts) != 3:
            raise ValueError
        value = dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise ValidationFailed([Problem(field, f"基準日「{raw}」は日付として読めません。2015-12-01 の形で指定してください。")])
    if not EARLIEST_AS_OF <= value <= LATEST_AS_OF:
        raise ValidationFailed([Problem(field, f"基準日「{raw}」は{EARLIEST_AS_OF.year}年から{LATEST_AS_OF.year}年までの日付で指定してください。")])
    return value


# --- scope -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """Which bodies a list covers: every body, one prefecture, or one body."""

    national: bool = False
    prefecture_code: str | None = None
    body_id: int | None = None
    body_ids: tuple[int, ...] | None = None  # a chosen set (e.g. the bodies of new cases)


def reach_of(actor: Actor, permission: Permission = Permission.DELAY_VIEW) -> Reach:
    """Return the bodies the actor may see under ``permission``.

    :raise PermissionDenied: when the actor sees no body at all.
    """
    reach = visible_prefecture(actor, permission)
    if reach is True:
        return Reach(national=True)
    if reach is False:
        raise PermissionDenied("遅延状況を閲覧する権限がありません。")
    if reach is None:
        assert actor.body is not None
        return Reach(body_id=actor.body.id)
    return Reach(prefecture_code=str(reach))


def narrow(reach: Reach, prefecture_code: str | None = None, body_id: int | None = None) -> Reach:
    """Narrow a reach to one prefecture or body inside it; outside it the result is empty (NotFound)."""
    if body_id is not None:
        return Reach(body_id=body_id)
    if prefecture_code:
        if reach.national or reach.prefecture_code == prefecture_code:
            return Reach(prefecture_code=prefecture_code)
        raise NotFound("都道府県が見つかりません。")
    return reach


# --- loading -----------------------------------------------------------------------------------
#
# The plan states are the national hot path (≈ 52,500 rows), so the database does the decoding and
# Python receives few, plain integers per row. Each date is a day number counted from 1800-01-01
# (``julianday`` on SQLite, date subtraction on PostgreSQL; 0 = no date; dates are 1873–2199, see
# pmo.core.dates) packed 18 bits apiece: ``dates`` = planned start | planned end << 18 | actual start
# << 36, and ``rest`` = actual end | the five flags (a bit per month-precision date, one for 対象外)
# << 18 | (progress + 1) << 23. numpy
# unpacks whole columns with shifts and masks and views them as datetime64[D]; no Python date, string
# or JSON object is made per value. A past date's state is read the same way from the revisions'
# typed state columns (``PlanRevision.planned_start`` …), so replay decodes no JSON either.

DAY_BITS = 18
_DAY_MASK = (1 << DAY_BITS) - 1
_EPOCH_OFFSET = (dt.date(1970, 1, 1) - dt.date(1800, 1, 1)).days  # day number of 1970-01-01
_MONTH_BITS = {name: 1 << i for i, name in enumerate(PRECISION_COLUMNS)}
_NOT_APPLICABLE_BIT = 1 << len(PRECISION_COLUMNS)
_FLAG_BITS = len(PRECISION_COLUMNS) + 1
_PRECISIONS = np.array([rules.DatePrecision.DAY.value, rules.DatePrecision.MONTH.value], dtype=object)
_STATE_INTS = ("plan_id", "key", "dates", "rest")
_STATE_OBJECTS = ("vendor", "not_applicable_reason")
STATE_FIELDS = (*_STATE_INTS, *_STATE_OBJECTS)
_GROUPS = ("prefecture", "municipality", "union")
_KEY_FACTOR = 1_000_000  # plan key = body_id * _KEY_FACTOR + subtask_id


def _fetch(session: Session, stmt: Any) -> list[tuple[Any, ...]]:
    conn = session.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


def fetch_columns(session: Session, stmt: Any, names: Sequence[str], ints: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Run ``stmt`` through the DB-API cursor and return its columns as numpy arrays.

    No ORM or type processing per value: the columns named in ``ints`` (never NULL) become int64
    arrays by one C-level conversion each, the others object arrays. Bind values are rendered as
    literals (ints and codes only), so the statement runs as one plain query.
    """
    rows = _fetch(session, stmt)
    table = np.empty((len(rows), len(names)), dtype=object)
    if rows:
        table[:] = rows  # one C-level copy; faster than building each column from the tuples
    return {name: table[:, i].astype(np.int64) if name in ints else table[:, i] for i, name in enumerate(names)}


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _day_number(session: Session, value: Any) -> Any:
    """SQL: ``value`` (a date or ISO date text) as days since 1800-01-01; 0 when NULL."""
    if _is_postgresql(session):
        days = sa_cast(sa_cast(value, Date) - literal_column("DATE '1800-01-01'", Date), BigInteger)
    else:
        days = sa_cast(func.julianday(value) - 2378496.5, Integer)
    return func.coalesce(days, 0)


def _packed(session: Session, dates: dict[str, Any], precisions: dict[str, Any], not_applicable: Any,
            progress: Any) -> tuple[Any, Any]:
    """SQL: the ``dates`` and ``rest`` integers of one state (see the note above)."""
    day = {name: _day_number(session, value) for name, value in dates.items()}
    packed_dates = (day["planned_start"] + day["planned_end"] * (1 << DAY_BITS)
                    + day["actual_start"] * (1 << (2 * DAY_BITS)))
    flags: Any = case((not_applicable, _NOT_APPLICABLE_BIT), else_=0)
    for name, value in precisions.items():
        flags = flags + case((sa_cast(value, String) == rules.DatePrecision.MONTH.value, _MONTH_BITS[name]), else_=0)
    rest = (day["actual_end"] + flags * (1 << DAY_BITS)
            + (func.coalesce(progress, -1) + 1) * (1 << (DAY_BITS + _FLAG_BITS)))
    return packed_dates, rest


def _unpack_days(values: np.ndarray) -> np.ndarray:
    days = values & _DAY_MASK
    return np.where(days == 0, np.iinfo(np.int64).min, days - _EPOCH_OFFSET).view("datetime64[D]")


def _bodies_frame(session: Session, reach: Reach) -> dict[str, np.ndarray]:
    stmt = select(Body.id, Body.code, Body.name, sa_cast(Body.kind, String), Body.prefecture_code, Body.population)
    stmt = _scoped_bodies(stmt, reach).order_by(Body.code)
    names = ["body_id", "body_code", "body_name", "kind", "prefecture_code", "population"]
    cols = fetch_columns(session, stmt, names, ints=("body_id",))
    kinds = {k.name: k.value for k in BodyKind}  # the stored form may be the member's name or its value
    cols["kind"] = np.array([kinds.get(k, k) for k in cols["kind"]], dtype=object) if len(cols["kind"]) else cols["kind"]
    cols["population"] = cols["population"].astype(float)  # None becomes NaN
    return cols


def _scoped_bodies(stmt: Any, reach: Reach) -> Any:
    if reach.body_ids is not None:
        return stmt.where(Body.id.in_(reach.body_ids))
    if reach.body_id is not None:
        return stmt.where(Body.id == reach.body_id)
    if reach.prefecture_code is not None:
        return stmt.where(Body.prefecture_code == reach.prefecture_code)
    return stmt


def _terms_frame(session: Session, as_of: dt.date) -> dict[str, np.ndarray]:
    views = catalog.subtasks_on(session, as_of)

    def column(values: list[Any], dtype: Any = object) -> np.ndarray:
        return np.array(values, dtype=dtype)

    return {
        "subtask_id": column([v.id for v in views], np.int64),
        "subtask": column([v.code for v in views]),
        "subtask_name": column([v.name for v in views]),
        "item": column([v.item_code for v in views]),
        "item_name": column([v.item_name for v in views]),
        "seq": column([v.seq for v in views], np.int64),
        "sort_order": column([v.sort_order for v in views], np.int64),
        "milestone": column([v.milestone_date or None for v in views], "datetime64[D]"),
        "milestone_name": column([v.milestone_name for v in views]),
        "applies_prefecture": column([v.applies_prefecture for v in views], bool),
        "applies_municipality": column([v.applies_municipality for v in views], bool),
        "applies_union": column([v.applies_union for v in views], bool),
    }


def _scoped(stmt: Any, reach: Reach, body_id_column: Any) -> Any:
    if reach.body_ids is not None:
        return stmt.where(body_id_column.in_(reach.body_ids))
    if reach.body_id is not None:
        return stmt.where(body_id_column == reach.body_id)
    if reach.prefecture_code is not None:
        return stmt.join(Body, Body.id == body_id_column).where(Body.prefecture_code == reach.prefecture_code)
    return stmt


def _state_columns(session: Session, stmt: Any) -> dict[str, np.ndarray]:
    return fetch_columns(session, stmt, STATE_FIELDS, ints=_STATE_INTS)


def _not_blank(value: Any) -> Any:
    return value.is_not(None) & (value != "")


def _current_states(session: Session, reach: Reach, without_history: bool = False) -> dict[str, np.ndarray]:
    """Return the plans as they stand now (only those without any revision, with ``without_history``)."""
    return _state_columns(session, _current_select(session, reach, without_history))


def _current_select(session: Session, reach: Reach, without_history: bool) -> Any:
    reason = Plan.not_applicable_reason
    stmt = select(
        Plan.id, sa_cast(Plan.body_id, BigInteger) * _KEY_FACTOR + Plan.subtask_id,
        *_packed(session, {c: getattr(Plan, c) for c in DATE_COLUMNS},
                 {c: getattr(Plan, c) for c in PRECISION_COLUMNS}, _not_blank(reason), Plan.progress),
        Plan.vendor, reason,
    )
    stmt = _scoped(stmt, reach, Plan.body_id)
    if without_history:
        # PostgreSQL hashes the open revisions (one per plan with history, a small partial index);
        # SQLite probes per plan, and only ix_plan_revisions_plan_id covers that probe.
        history = select(PlanRevision.id).where(PlanRevision.plan_id == Plan.id)
        if _is_postgresql(session):
            history = history.where(PlanRevision.superseded_dt.is_(None))
        stmt = stmt.where(~history.exists())
    return stmt


def revision_cutoff(as_of: dt.date) -> dt.datetime:
    """Return the first instant after ``as_of`` in Japan (revisions before it count on ``as_of``)."""
    # In UTC: SQLite keeps the wall time of what was written, and clock.now() writes UTC.
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=clock.JST).astimezone(dt.timezone.utc)


def _replayed_states(session: Session, reach: Reach, as_of: dt.date) -> dict[str, np.ndarray]:
    """Return each plan's state on ``as_of`` from its revisions (the current row when it has none).

    The revision in force at the end of ``as_of`` is the one recorded before the cutoff and not
    superseded before it (``superseded_dt``, see ``pmo.plans.models.link_revisions``): a plain scan of
    the revisions' typed state columns, no sort, no window and no JSON.
    """
    r = PlanRevision
    cutoff = revision_cutoff(as_of)
    recorded: Any = r.recorded_dt
    if not _is_postgresql(session):  # SQLite has no range statistics: keep it off the recorded_dt index,
        # whose order is not the table's (a scan is 2.5× faster once plans have several revisions)
        recorded = UnaryExpression(recorded, operator=operators.custom_op("+"), type_=recorded.type)
    reason = r.not_applicable_reason
    stmt = select(
        r.plan_id, sa_cast(r.body_id, BigInteger) * _KEY_FACTOR + r.subtask_id,
        *_packed(session, {n: getattr(r, n) for n in DATE_COLUMNS}, {n: getattr(r, n) for n in PRECISION_COLUMNS},
                 _not_blank(reason), r.progress),
        r.vendor, reason,
    ).where(recorded < cutoff, or_(r.superseded_dt.is_(None), r.superseded_dt >= cutoff))
    # A plan with revisions is judged by them only (none yet on D: it did not exist on D);
    # a plan without any revision (loaded before the history was kept) as it stands now. One statement.
    return _state_columns(session, union_all(_scoped(stmt, reach, r.body_id),
                                             _current_select(session, reach, without_history=True)))


def _snapshot_states(session: Session, snapshot_id: int, reach: Reach) -> dict[str, np.ndarray]:
    row = SnapshotRow
    stmt = select(
        literal_column("-1"), sa_cast(row.body_id, BigInteger) * _KEY_FACTOR + row.subtask_id,
        *_packed(session, {c: getattr(row, c) for c in DATE_COLUMNS}, {c: getattr(row, c) for c in PRECISION_COLUMNS},
                 row.not_applicable, row.progress),
        literal_column("NULL"), case((row.not_applicable, "対象外"), else_=None),
    ).where(row.snapshot_id == snapshot_id)
    return _state_columns(session, _scoped(stmt, reach, row.body_id))


def _assemble(bodies: dict[str, np.ndarray], terms: dict[str, np.ndarray],
              states: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cross bodies with the sub-tasks that apply to their kind, then join the plan states.

    Bodies come ordered by code and terms by catalog order, so the rows come out in (body code,
    catalog order) by integer positions alone.
    """
    kind = bodies["kind"]
    group = np.where(kind == BodyKind.PREFECTURE.value, 0, np.where(kind == BodyKind.UNION.value, 2, 1))
    body_parts, term_parts = [], []
    for g, name in enumerate(_GROUPS):
        b = np.flatnonzero(group == g)
        t = np.flatnonzero(terms[f"applies_{name}"])
        body_parts.append(np.repeat(b, len(t)))
        term_parts.append(np.tile(t, len(b)))
    body_idx = np.concatenate(body_parts).astype(np.int64)
    term_idx = np.concatenate(term_parts).astype(np.int64)
    order = np.lexsort((term_idx, body_idx))
    body_idx, term_idx = body_idx[order], term_idx[order]

    columns: dict[str, Any] = {}
    for name in ("body_id", "body_code", "body_name", "kind", "prefecture_code", "population"):
        columns[name] = bodies[name][body_idx]
    for name in ("subtask_id", "subtask", "subtask_name", "item", "item_name", "seq", "sort_order", "milestone_name"):
        columns[name] = terms[name][term_idx]
    columns["milestone"] = terms["milestone"][term_idx].astype("datetime64[s]")

    # Left join on the plan key; a missing plan takes position -1, which picks the "no plan" row
    # appended to every state column.
    wanted = columns["body_id"] * _KEY_FACTOR + columns["subtask_id"]
    position = pd.Index(states["key"]).get_indexer(wanted) if len(states["key"]) else np.full(len(wanted), -1)

    def joined(name: str, missing: Any) -> np.ndarray:
        values = states[name]
        return np.append(values, np.array([missing], dtype=values.dtype))[position]

    dates, rest = joined("dates", 0), joined("rest", 0)
    for i, name in enumerate(DATE_COLUMNS[:3]):
        columns[name] = _unpack_days(dates >> (i * DAY_BITS))
    columns["actual_end"] = _unpack_days(rest)
    flags = rest >> DAY_BITS
    for name in PRECISION_COLUMNS:
        columns[name] = _PRECISIONS[((flags & _MONTH_BITS[name]) != 0).view(np.int8)]
    for name in DATE_COLUMNS:
        columns[name] = columns[name].astype("datetime64[s]")
    columns["not_applicable"] = (flags & _NOT_APPLICABLE_BIT) != 0
    columns["not_applicable_reason"] = joined("not_applicable_reason", None)
    columns["vendor"] = joined("vendor", None)
    plan_id = joined("plan_id", -1)
    columns["plan_id"] = pd.arrays.IntegerArray(plan_id, plan_id < 0)
    progress = (rest >> (DAY_BITS + _FLAG_BITS)) - 1
    columns["progress"] = pd.arrays.IntegerArray(progress, progress < 0)
    # Object columns stay object: inferring pandas' string dtype would copy every value again.
    return pd.DataFrame({name: pd.Series(values, dtype=object, copy=False)
                         if isinstance(values, np.ndarray) and values.dtype == object else values
                         for name, values in columns.items()})


def load_plans(
    session: Session, reach: Reach, as_of: dt.date, *, replay: bool | None = None
) -> pd.DataFrame:
    """Return one row per (body in reach, applicable sub-task) with the plan as it stood on ``as_of``.

    ``replay`` (default: ``as_of`` is before today) reads the plan history instead of the current rows.
    Columns: body_id, body_code, body_name, kind, prefecture_code, population, subtask_id, subtask,
    subtask_name, item, item_name, seq, sort_order, milestone, milestone_name, the four dates and their
    precisions, not_applicable_reason, not_applicable, vendor, progress.
    """
    if replay is None:
        replay = as_of < clock.today()
    bodies = _bodies_frame(session, reach)
    terms = _terms_frame(session, as_of)
    states = _replayed_states(session, reach, as_of) if replay else _current_states(session, reach)
    return _assemble(bodies, terms, states)


def load_snapshot_plans(session: Session, snapshot: MonthlySnapshot, reach: Reach) -> pd.DataFrame:
    """Return the plans frame frozen by a monthly close (same columns as ``load_plans``)."""
    bodies = _bodies_frame(session, reach)
    terms = _terms_frame(session, snapshot.as_of)
    return _assemble(bodies, terms, _snapshot_states(session, snapshot.id, reach))


# --- judging -----------------------------------------------------------------------------------


@dataclass
class DelayState:
    """Everything the screens need about the bodies in reach on one date."""

    as_of: dt.date
    thresholds: rules.SeverityThresholds
    plans: pd.DataFrame  # load_plans + status + forecast_end
    signals: pd.DataFrame  # compute_signals + body_name, prefecture_code, vendor
    bodies: pd.DataFrame  # one row per body: status, counts, rate, worst signal, vendors


def population_class_of(population: pd.Series) -> pd.Series:
    """Return the population class label of each value (人口規模)."""
    labels = np.full(len(population), "不明", dtype=object)
    values = population.to_numpy(dtype=float, na_value=np.nan)
    for low, high, label in POPULATION_CLASSES:
        mask = (values >= low) & ((values < high) if high is not None else True)
        labels[mask] = label
    return pd.Series(labels, index=population.index)


SIGNAL_CODES = [k.value for k in rules.SignalKind]


def _bitmask(frame: pd.DataFrame, key: str, codes: np.ndarray) -> pd.Series:
    """Per body, OR of 1 << code over its rows (one bit per distinct value)."""
    pairs = pd.DataFrame({"body_code": frame["body_code"].to_numpy(dtype=object), "bit": np.left_shift(1, codes)})
    return pairs.drop_duplicates().groupby("body_code")["bit"].sum()


def judge(plans: pd.DataFrame, as_of: dt.date, thresholds: rules.SeverityThresholds, *,
          light: bool = False) -> DelayState:
    """Compute signals, statuses, forecasts and per-body roll-ups for a loaded plans frame.

    ``light`` skips what only the follow-up list needs (worst signal, masks, vendors, forecasts).
    Per body: ``signal_mask`` has bit i set when it has a signal of ``SIGNAL_CODES[i]``;
    ``item_mask`` bit i for a signal in ``item_codes[i]`` (see ``has_signal``/``has_item``).
    """
    plans = plans.copy()
    judged = rules.evaluate(plans, as_of, thresholds)
    signals = judged.signals
    plans["status"] = judged.statuses.astype(str)
    body_cols = plans.drop_duplicates("body_code")[
        ["body_code", "body_id", "body_name", "kind", "prefecture_code", "population"]
    ]
    statuses = rules.body_status(signals, body_cols["body_code"])
    rates = judged.rates if len(plans) else pd.DataFrame(
        columns=["body_code", "not_started", "in_progress", "done", "not_applicable", "total", "rate"]
    )
    bodies = body_cols.merge(statuses, on="body_code", how="left").merge(rates, on="body_code", how="left")
    bodies["status"] = bodies["status"].astype(object).fillna(rules.BodyStatus.ON_TRACK.value).astype(str)
    bodies["signal_count"] = bodies["signal_count"].fillna(0).astype(int)
    bodies["population_class"] = population_class_of(bodies["population"])
    if light:
        return DelayState(as_of=as_of, thresholds=thresholds, plans=plans, signals=signals, bodies=bodies)

    plans["forecast_end"] = judged.forecast_end
    codes = bodies["body_code"]
    if len(signals):
        rank = signals["severity"].cat.codes.to_numpy()
        days = signals["days"].to_numpy(dtype=float, na_value=-1.0)
        order = np.lexsort((-days, -rank))
        worst = signals.iloc[order].drop_duplicates("body_code")
        labels = {k.value: k.label for k in rules.SignalKind}
        text = [f"{s} {labels[k]}" + (f"（{int(d)}日）" if d >= 0 else "")
                for s, k, d in zip(worst["subtask"].to_numpy(dtype=object), worst["signal"].to_numpy(dtype=object),
                                   worst["days"].to_numpy(dtype=float, na_value=-1.0))]
        bodies["worst"] = codes.map(dict(zip(worst["body_code"], text)))
        bodies["signal_mask"] = codes.map(_bitmask(signals, "signal", signals["signal"].cat.codes.to_numpy()))
        item_codes, item_index = pd.factorize(plans["item"].to_numpy(dtype=object), sort=True)
        bodies["item_mask"] = codes.map(_bitmask(signals, "item", item_codes[judged.signal_rows]))
        item_list = list(item_index)
    else:
        bodies["worst"] = None
        bodies["signal_mask"] = 0
        bodies["item_mask"] = 0
        item_list = []
    bodies["signal_mask"] = bodies["signal_mask"].fillna(0).astype(np.int64)
    bodies["item_mask"] = bodies["item_mask"].fillna(0).astype(np.int64)
    bodies.attrs["item_codes"] = item_list
    vendor_pairs = plans.loc[plans["vendor"].notna(), ["body_code", "vendor"]].drop_duplicates()
    vendors: dict[str, list[str]] = {}
    for code, vendor in zip(vendor_pairs["body_code"], vendor_pairs["vendor"]):
        vendors.setdefault(code, []).append(vendor)
    bodies["vendors"] = [sorted(vendors.get(code, [])) for code in codes]
    bodies["signal_kinds"] = [[c for i, c in enumerate(SIGNAL_CODES) if m >> i & 1] for m in bodies["signal_mask"]]
    details = signals.copy()
    for column in ("body_name", "prefecture_code", "vendor"):
        details[column] = plans[column].to_numpy(dtype=object)[judged.signal_rows]
    return DelayState(as_of=as_of, thresholds=thresholds, plans=plans, signals=details, bodies=bodies)


def explained(signals: pd.DataFrame) -> pd.DataFrame:
    """Return the signals with an ``explanation`` column (Japanese sentence); call on a few rows only."""
    out = signals.copy()
    out["explanation"] = rules.explain_frame(out) if len(out) else pd.Series([], dtype=object)
    return out


def delay_state(
    session: Session, actor: Actor, as_of: dt.date, *, prefecture_code: str | None = None,
    body_code: str | None = None, permission: Permission = Permission.DELAY_VIEW,
) -> DelayState:
    """Return the delay state on ``as_of`` of every body the actor may see (optionally one prefecture/body).

    :raise NotFound: for a body or prefecture outside the actor's reach (an ``authz.denied`` entry is written).
    """
    reach = reach_of(actor, permission)
    body_id = None
    if body_code:
        from pmo.orgs.service import get_body

        body_id = get_body(session, actor, body_code, permission).id
    reach = narrow(reach, prefecture_code, body_id)
    thresholds = get_thresholds(session)
    if reach.body_id is not None or not CACHE["enabled"]:
        return judge(load_plans(session, reach, as_of), as_of, thresholds)
    key = (reach, as_of, as_of < clock.today(), thresholds, data_fingerprint(session))
    state = _state_cache.get(key)
    if state is None:
        state = judge(load_plans(session, reach, as_of), as_of, thresholds)
        _state_cache[key] = state
        while len(_state_cache) > 4:  # whole plan frames: keep few (the dashboards use the compact roll-ups)
            _state_cache.pop(next(iter(_state_cache)))
    return state


_state_cache: dict[tuple[Any, ...], DelayState] = {}
# The web app turns this on (config DELAY_STATE_CACHE); tests leave it off except the cache's own test,
# because rolled-back test data can repeat a fingerprint.
CACHE = {"enabled": False}


def data_fingerprint(session: Session) -> tuple[Any, ...]:
    """Return a cheap summary that changes whenever plans, their history or the catalog change.

    Every plan write bumps the plan's ``version`` (and adds a revision); inserts and deletes change the
    count and the largest id; a new catalog version changes the largest version id.
    """
    from pmo.catalog.models import CatalogVersion, SubtaskTerms

    plans = session.execute(select(func.count(Plan.id), func.max(Plan.id), func.sum(Plan.version),
                                   func.max(Plan.updated_dt))).one()
    revisions = session.execute(select(func.count(PlanRevision.id), func.max(PlanRevision.id))).one()
    catalog = (session.scalar(select(func.max(CatalogVersion.id))), session.scalar(select(func.count(SubtaskTerms.id))))
    bodies = session.scalar(select(func.count(Body.id)))
    return (*plans, *revisions, *catalog, bodies)


def data_version(session: Session) -> tuple[Any, ...]:
    """Return the version of everything a roll-up is computed from, in one cheap query (index look-ups).

    Every plan write appends a ``PlanRevision`` (the UI, the API, imports and the demo alike), so the
    newest revision id is a counter of plan changes; the newest plan id counts new plans. The catalog
    is versioned (every change of terms or milestones is a new ``CatalogVersion``), and monthly closes
    are counted by their id and close time. The body master (names, population) is not versioned: a
    change shows once any plan changes, or when the cached entry expires (one hour).
    """
    from pmo.catalog.models import CatalogVersion, SubtaskTerms

    def newest(column: Any) -> Any:
        return select(func.max(column)).scalar_subquery()

    row = session.execute(select(
        newest(PlanRevision.id), newest(Plan.id), newest(CatalogVersion.id), newest(SubtaskTerms.id),
        newest(MonthlySnapshot.id), newest(MonthlySnapshot.closed_dt), newest(Body.id),
    )).one()
    return tuple(v.isoformat() if isinstance(v, dt.datetime) else v for v in row)


def signal_items(state: DelayState) -> list[dict[str, Any]]:
    """Return the signals as plain items: body_code, subtask, signal, days, severity (CLI and API)."""
    s = state.signals
    return [
        {"body_code": code, "subtask": subtask, "signal": str(signal),
         "days": None if pd.isna(days) else int(days), "severity": str(severity)}
        for code, subtask, signal, days, severity in zip(
            s["body_code"], s["subtask"], s["signal"], s["days"], s["severity"]
        )
    ]


def thresholds_dict(thresholds: rules.SeverityThresholds) -> dict[str, Any]:
    """Return the thresholds as JSON-ready values."""
    out = asdict(thresholds)
    out["no_plan"] = thresholds.no_plan.code
    out["finished_late_cap"] = thresholds.finished_late_cap.code
    return out


LATE_SIGNALS = (rules.SignalKind.LATE_START.value, rules.SignalKind.LATE_FINISH.value,
                rules.SignalKind.MILESTONE_AT_RISK.value)


def _vendor_late(state: DelayState, vendor: str) -> pd.DataFrame:
    named = state.plans[state.plans["vendor"] == vendor][["body_code", "subtask"]]
    late = state.signals[state.signals["signal"].astype(str).isin(LATE_SIGNALS)][["body_code", "subtask"]]
    return named.merge(late, on=["body_code", "subtask"]).drop_duplicates()


def vendor_bodies(state: DelayState, vendor: str) -> pd.DataFrame:
    """Return the bodies that name ``vendor`` on a plan whose sub-task is late (着手遅れ・完了遅れ・未達のおそれ)."""
    codes = set(_vendor_late(state, vendor)["body_code"])
    rows = state.bodies[state.bodies["body_code"].isin(codes)]
    return rows.sort_values(["signal_count", "body_code"], ascending=[False, True])


def vendor_late_subtasks(state: DelayState, vendor: str) -> dict[str, list[str]]:
    """Return, per body, the late sub-tasks whose plan names ``vendor``."""
    late = _vendor_late(state, vendor)
    return {code: sorted(group["subtask"]) for code, group in late.groupby("body_code")}


def reach_of_or_none(actor: Actor, permission: Permission = Permission.DELAY_VIEW) -> Reach | None:
    """Return the actor's reach, or None when it sees no body."""
    try:
        return reach_of(actor, permission)
    except PermissionDenied:
        return None
