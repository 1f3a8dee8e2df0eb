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
import json
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Text, func, select
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session

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


def _bodies_frame(session: Session, reach: Reach) -> pd.DataFrame:
    stmt = select(Body.id, Body.code, Body.name, Body.kind, Body.prefecture_code, Body.population)
    if reach.body_ids is not None:
        stmt = stmt.where(Body.id.in_(reach.body_ids))
    elif reach.body_id is not None:
        stmt = stmt.where(Body.id == reach.body_id)
    elif reach.prefecture_code is not None:
        stmt = stmt.where(Body.prefecture_code == reach.prefecture_code)
    rows = session.execute(stmt.order_by(Body.code)).all()
    frame = pd.DataFrame.from_records(
        rows, columns=["body_id", "body_code", "body_name", "kind", "prefecture_code", "population"]
    )
    frame["kind"] = [k.value if isinstance(k, BodyKind) else k for k in frame["kind"]]
    return frame


def _terms_frame(session: Session, as_of: dt.date) -> pd.DataFrame:
    views = catalog.subtasks_on(session, as_of)
    return pd.DataFrame({
        "subtask_id": [v.id for v in views],
        "subtask": [v.code for v in views],
        "subtask_name": [v.name for v in views],
        "item": [v.item_code for v in views],
        "item_name": [v.item_name for v in views],
        "seq": [v.seq for v in views],
        "sort_order": [v.sort_order for v in views],
        "milestone": pd.to_datetime([v.milestone_date for v in views]),
        "milestone_name": [v.milestone_name for v in views],
        "applies_prefecture": [v.applies_prefecture for v in views],
        "applies_municipality": [v.applies_municipality for v in views],
        "applies_union": [v.applies_union for v in views],
    })


STATE_COLUMNS = [
    "plan_id", "body_id", "subtask_id", *DATE_COLUMNS, *PRECISION_COLUMNS, "not_applicable_reason", "vendor",
    "progress",
]


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def _scoped(stmt: Any, reach: Reach, body_id_column: Any) -> Any:
    if reach.body_ids is not None:
        return stmt.where(body_id_column.in_(reach.body_ids))
    if reach.body_id is not None:
        return stmt.where(body_id_column == reach.body_id)
    if reach.prefecture_code is not None:
        return stmt.join(Body, Body.id == body_id_column).where(Body.prefecture_code == reach.prefecture_code)
    return stmt


def fetch_columns(session: Session, stmt: Any, names: list[str]) -> pd.DataFrame:
    """Run ``stmt`` on the session's connection through the DB-API cursor and return its columns.

    No ORM or type processing per value: dates arrive as the driver gives them (str on SQLite, date
    on PostgreSQL) and enums as their stored codes; callers convert whole columns at once. Bind values
    are rendered as literals (ints and codes only), so the statement runs as one plain query.
    """
    conn = session.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in names})
    table = np.empty((len(rows), len(names)), dtype=object)
    table[:] = rows  # one C-level copy; faster than building each column from the tuples
    # dtype=object: no per-value type inference; callers convert the columns they compute on.
    return pd.DataFrame({name: pd.Series(table[:, i], dtype=object) for i, name in enumerate(names)})


def to_datetimes(values: pd.Series) -> pd.Series:
    """Convert a column of dates (ISO strings or date objects, None for missing) to datetime64[s]."""
    first = next((v for v in values.to_numpy(dtype=object) if v is not None and v == v), None)
    if isinstance(first, str):
        converted = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    else:
        converted = pd.to_datetime(values, errors="coerce")
    return converted.astype("datetime64[s]")


def _with_dates(frame: pd.DataFrame) -> pd.DataFrame:
    for column in DATE_COLUMNS:
        frame[column] = to_datetimes(frame[column])
    return frame


def _current_states(session: Session, reach: Reach, without_history: bool = False) -> pd.DataFrame:
    """Return the plans as they stand now (only those without any revision, with ``without_history``)."""
    columns = [Plan.id, *[getattr(Plan, c) for c in STATE_COLUMNS[1:]]]
    stmt = _scoped(select(*columns), reach, Plan.body_id)
    if without_history:
        stmt = stmt.where(~select(PlanRevision.id).where(PlanRevision.plan_id == Plan.id).exists())
    return _with_dates(fetch_columns(session, stmt, STATE_COLUMNS))


def revision_cutoff(as_of: dt.date) -> dt.datetime:
    """Return the first instant after ``as_of`` in Japan (revisions before it count on ``as_of``)."""
    # In UTC: SQLite keeps the wall time of what was written, and clock.now() writes UTC.
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=clock.JST).astimezone(dt.timezone.utc)


def _replayed_states(session: Session, reach: Reach, as_of: dt.date) -> pd.DataFrame:
    """Return each plan's state on ``as_of`` from its revisions (the current row when it has none).

    The newest revision per plan is picked with a window function; its JSON is fetched as text and
    decoded here once per row (cheaper than extracting each field in SQL, which re-parses the JSON
    for every field on PostgreSQL's ``json``).
    """
    ranked = _scoped(select(
        PlanRevision.id.label("revision_id"),
        func.row_number().over(
            partition_by=PlanRevision.plan_id, order_by=(PlanRevision.recorded_dt.desc(), PlanRevision.id.desc())
        ).label("rn"),
    ).where(PlanRevision.recorded_dt < revision_cutoff(as_of)), reach, PlanRevision.body_id).subquery()
    stmt = (
        select(PlanRevision.plan_id, PlanRevision.body_id, PlanRevision.subtask_id,
               sa_cast(PlanRevision.after, Text))
        .join(ranked, ranked.c.revision_id == PlanRevision.id).where(ranked.c.rn == 1)
    )
    raw = fetch_columns(session, stmt, ["plan_id", "body_id", "subtask_id", "after"])
    texts = [text or "{}" for text in raw["after"].to_numpy(dtype=object)]
    states = json.loads("[" + ",".join(texts) + "]")  # one parse for every row
    fields = pd.DataFrame.from_records(states, columns=STATE_COLUMNS[3:]) if states else None
    replayed = raw.drop(columns=["after"])
    for column in STATE_COLUMNS[3:]:
        replayed[column] = fields[column].to_numpy(dtype=object) if fields is not None else []
    replayed = _with_dates(replayed)
    # A plan with revisions is judged by them only (none yet on D: it did not exist on D);
    # a plan without any revision (loaded before the history was kept) as it stands now.
    current = _current_states(session, reach, without_history=True)
    if not len(current):
        return replayed
    if not len(replayed):
        return current
    return pd.concat([replayed, current], ignore_index=True)


def _snapshot_states(session: Session, snapshot_id: int, reach: Reach) -> pd.DataFrame:
    cols = ["body_id", "subtask_id", *DATE_COLUMNS, *PRECISION_COLUMNS, "not_applicable", "progress"]
    stmt = select(*[getattr(SnapshotRow, c) for c in cols]).where(SnapshotRow.snapshot_id == snapshot_id)
    frame = _with_dates(fetch_columns(session, _scoped(stmt, reach, SnapshotRow.body_id), cols))
    frame["not_applicable_reason"] = np.where(frame["not_applicable"].astype(bool), "対象外", None)
    frame["vendor"] = None
    frame["plan_id"] = None
    return frame.drop(columns=["not_applicable"])


def _assemble(bodies: pd.DataFrame, terms: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """Cross bodies with the sub-tasks that apply to their kind, then join the plan states."""
    kind = bodies["kind"]
    group = np.where(kind == BodyKind.PREFECTURE.value, "prefecture",
                     np.where(kind == BodyKind.UNION.value, "union", "municipality"))
    bodies = bodies.assign(_group=group)
    parts = []
    for name in ("prefecture", "municipality", "union"):
        b = bodies[bodies["_group"] == name]
        t = terms[terms[f"applies_{name}"]]
        if len(b) and len(t):
            parts.append(b.merge(t, how="cross"))
    if not parts:
        frame = bodies.merge(terms, how="cross").iloc[0:0]
    else:
        frame = pd.concat(parts, ignore_index=True)
    frame = frame.drop(columns=["_group", "applies_prefecture", "applies_municipality", "applies_union"])
    # Left join on (body_id, subtask_id) through one int64 key (unique per plan).
    def key(df: pd.DataFrame) -> np.ndarray:
        return df["body_id"].to_numpy(dtype=np.int64) * 1_000_000 + df["subtask_id"].to_numpy(dtype=np.int64)

    position = pd.Index(key(states)).get_indexer(key(frame)) if len(states) else np.full(len(frame), -1)
    for column in states.columns:
        if column in ("body_id", "subtask_id"):
            continue
        values = states[column].array if len(states) else pd.array([None] * 0, dtype=object)
        frame[column] = values.take(position, allow_fill=True)
    for column in DATE_COLUMNS:
        frame[column] = pd.Series(frame[column], index=frame.index).astype("datetime64[s]")
    for column in PRECISION_COLUMNS:
        frame[column] = frame[column].astype(object).fillna(rules.DatePrecision.DAY.value)
    reason = frame["not_applicable_reason"]
    frame["not_applicable"] = (reason.notna() & (reason != "")).astype(bool)
    frame = frame.sort_values(["body_code", "sort_order"], kind="stable").reset_index(drop=True)
    return frame


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
    signals = rules.compute_signals(plans, as_of, thresholds)
    plans["status"] = rules.derive_statuses(plans, as_of).astype(str)
    body_cols = plans.drop_duplicates("body_code")[
        ["body_code", "body_id", "body_name", "kind", "prefecture_code", "population"]
    ]
    statuses = rules.body_status(signals, body_cols["body_code"])
    rates = rules.completion_rates(plans, as_of) if len(plans) else pd.DataFrame(
        columns=["body_code", "not_started", "in_progress", "done", "not_applicable", "total", "rate"]
    )
    bodies = body_cols.merge(statuses, on="body_code", how="left").merge(rates, on="body_code", how="left")
    bodies["status"] = bodies["status"].astype(object).fillna(rules.BodyStatus.ON_TRACK.value).astype(str)
    bodies["signal_count"] = bodies["signal_count"].fillna(0).astype(int)
    bodies["population_class"] = population_class_of(bodies["population"])
    if light:
        return DelayState(as_of=as_of, thresholds=thresholds, plans=plans, signals=signals, bodies=bodies)

    plans["forecast_end"] = rules.forecast_ends(plans, as_of)
    codes = bodies["body_code"]
    if len(signals):
        rank = signals["severity"].cat.codes.to_numpy()
        days = signals["days"].to_numpy(dtype=float, na_value=-1.0)
        order = np.lexsort((-days, -rank))
        worst = signals.iloc[order].drop_duplicates("body_code")
        labels = {k.value: k.label for k in rules.SignalKind}
        text = [f"{s} {labels[str(k)]}" + (f"（{int(d)}日）" if not pd.isna(d) else "")
                for s, k, d in zip(worst["subtask"], worst["signal"], worst["days"])]
        bodies["worst"] = codes.map(dict(zip(worst["body_code"], text)))
        bodies["signal_mask"] = codes.map(_bitmask(signals, "signal", signals["signal"].cat.codes.to_numpy()))
        item_codes, item_index = pd.factorize(plans["item"].to_numpy(dtype=object), sort=True)
        item_of = dict(zip(item_index, range(len(item_index))))
        bodies["item_mask"] = codes.map(_bitmask(signals, "item", np.array([item_of[i] for i in signals["item"]])))
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
    details = signals.merge(plans[["body_code", "subtask", "body_name", "prefecture_code", "vendor"]],
                            on=["body_code", "subtask"], how="left")
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
        while len(_state_cache) > 16:
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
