"""Dashboards and the steering-meeting report: the delay state in scope rolled up into tables and figures.

Everything a page shows that does not depend on the viewer's filter or cases — per-body statuses,
the tables and the Plotly figures — is a ``Rollup`` computed once per (scope, as-of date, thresholds,
data version) and shared by every request and worker through ``ROLLUP_CACHE`` (Redis when configured,
else in-process; see pmo.core.sharedcache). A request then only filters 1,835 body rows and renders.
Monthly snapshots are frozen, so the roll-up of each one is cached the same way (keyed by the
snapshot, its close time, the thresholds and the reach); a re-close changes the key.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from sqlalchemy import select
from sqlalchemy.orm import Session

from pmo.accounts.permissions import Actor, Permission, can
from pmo.core import clock
from pmo.core.errors import NotFound, PermissionDenied
from pmo.core.sharedcache import SharedCache
from pmo.delays import cases as case_service
from pmo.delays import rules as delay_rules
from pmo.delays import service as delays
from pmo.orgs.models import BODY_KIND_LABELS, Body, BodyKind
from pmo.plans.models import MonthlySnapshot
from pmo.reports import charts, rules

KIND_LABELS = {k.value: label for k, label in BODY_KIND_LABELS.items()}
TREND_MONTHS = 24
_snapshot_cache: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
_CACHE_SIZE = 256


def prefecture_names(session: Session) -> dict[str, str]:
    """Return prefecture code (2 digits) → name."""
    rows = session.execute(select(Body.prefecture_code, Body.name).where(Body.kind == BodyKind.PREFECTURE))
    return {code: name for code, name in rows}


def previous_snapshot(session: Session, as_of: dt.date) -> MonthlySnapshot | None:
    """Return the newest monthly close before ``as_of`` (the previous report)."""
    return session.scalar(
        select(MonthlySnapshot).where(MonthlySnapshot.as_of < as_of).order_by(MonthlySnapshot.as_of.desc()).limit(1)
    )


def snapshot_bodies(session: Session, snapshot: MonthlySnapshot, reach: delays.Reach,
                    thresholds: delay_rules.SeverityThresholds) -> pd.DataFrame:
    """Return the per-body roll-up (status, rate …) of a monthly close judged at its month end."""
    key = (snapshot.id, snapshot.closed_dt, thresholds, reach)

    def compute() -> pd.DataFrame:
        plans = delays.load_snapshot_plans(session, snapshot, reach)
        return delays.judge(plans, snapshot.as_of, thresholds, light=True).bodies[list(SNAPSHOT_COLUMNS)]

    if ROLLUP_CACHE is not None:
        return ROLLUP_CACHE.get_or_compute(f"snapshot:{key!r}", compute)
    cached = _snapshot_cache.get(key)
    if cached is not None:
        _snapshot_cache.move_to_end(key)
        return cached
    bodies = compute()
    _snapshot_cache[key] = bodies
    while len(_snapshot_cache) > _CACHE_SIZE:
        _snapshot_cache.popitem(last=False)
    return bodies


SNAPSHOT_COLUMNS = ("body_code", "body_name", "prefecture_code", "status", "done", "not_applicable", "total", "rate")


def trend_table(session: Session, reach: delays.Reach, thresholds: delay_rules.SeverityThresholds,
                as_of: dt.date) -> pd.DataFrame:
    """Return the month-by-month roll-up of the monthly closes up to ``as_of`` (last 24 months)."""
    snapshots = list(session.scalars(
        select(MonthlySnapshot).where(MonthlySnapshot.as_of <= as_of)
        .order_by(MonthlySnapshot.as_of.desc()).limit(TREND_MONTHS)
    ))
    def bodies_of(snapshot: MonthlySnapshot) -> pd.DataFrame:
        if reach.prefecture_code is None:
            return snapshot_bodies(session, snapshot, reach, thresholds)
        # Each body is judged on its own, so a prefecture's rows are those of the national roll-up,
        # which is computed once and shared by all 47 prefectures.
        national = snapshot_bodies(session, snapshot, delays.Reach(national=True), thresholds)
        return national[national["prefecture_code"] == reach.prefecture_code]

    points = [(f"{s.month.year}年{s.month.month}月", bodies_of(s)) for s in reversed(snapshots)]
    return rules.trend(points)


# The shared caches of roll-ups and of each body's own signals; the web app sets them
# (pmo.reports.views). None: compute every time.
ROLLUP_CACHE: SharedCache | None = None
BODY_CACHE: SharedCache | None = None
BODY_COLUMNS = (
    "body_code", "body_id", "body_name", "kind", "prefecture_code", "population", "population_class", "status",
    "signal_count", "not_started", "in_progress", "done", "not_applicable", "total", "rate", "worst",
    "signal_mask", "item_mask", "vendors", "signal_kinds",
)


@dataclass
class Rollup:
    """What the dashboards and the report show for one scope on one date, before the viewer's filter.

    Compact on purpose (it is cached and shared): one row per body, the small tables behind each
    figure, and each figure already serialised to JSON.
    """

    as_of: dt.date
    prefecture_code: str | None
    thresholds: delay_rules.SeverityThresholds
    bodies: pd.DataFrame
    items: list[tuple[str, str]]  # (作業項目, name) in catalog order
    tables: dict[str, pd.DataFrame]
    figures: dict[str, str]

    @property
    def summary(self) -> dict[str, Any]:
        bodies = self.bodies
        closed = bodies["done"].fillna(0).sum() + bodies["not_applicable"].fillna(0).sum()
        total = bodies["total"].fillna(0).sum()
        return {
            "bodies": int(len(bodies)),
            "attention": int(bodies["status"].isin(rules.ATTENTION).sum()),
            "critical": int((bodies["status"] == "critical").sum()),
            "rate": round(100 * closed / total, 1) if total else 0.0,
        }


def _compute_rollup(session: Session, as_of: dt.date, prefecture_code: str | None,
                    thresholds: delay_rules.SeverityThresholds) -> Rollup:
    reach = delays.Reach(national=True) if prefecture_code is None else delays.Reach(prefecture_code=prefecture_code)
    state = delays.judge(delays.load_plans(session, reach, as_of), as_of, thresholds)
    names = prefecture_names(session)
    plans, bodies = state.plans, state.bodies
    tables: dict[str, pd.DataFrame] = {"status": rules.status_counts(bodies), "rate_item": rules.rate_by_item(plans)}
    if prefecture_code is None:
        tables["rate_prefecture"] = rules.rate_by_prefecture(plans, names)
        tables["heatmap"] = rules.heatmap(plans, names)
        tables["signals"] = rules.signal_counts(state.signals)
        tables["prefecture"] = prefecture_summary(bodies, plans, names)
    else:
        tables["rate_prefecture"] = rules.rate_by_body(plans, bodies)
        tables["heatmap"] = rules.heatmap(plans, names, by="body_code")
    tables["trend"] = trend_table(session, reach, thresholds, as_of)
    figures = {
        "status": charts.status_bar(tables["status"]),
        "rate_item": charts.rate_bar(list(tables["rate_item"]["作業項目"]), list(tables["rate_item"]["完了率(%)"]),
                                     "完了率(%)", hover=list(tables["rate_item"]["名称"])),
        "rate_prefecture": charts.rate_bar(
            list(tables["rate_prefecture"]["都道府県" if prefecture_code is None else "団体名"]),
            list(tables["rate_prefecture"]["完了率(%)"]), "完了率(%)", height=380),
        "heatmap": charts.heatmap(tables["heatmap"]),
        "trend": charts.trend(tables["trend"]),
    }
    items = plans.drop_duplicates("item").sort_values("sort_order")
    compact = bodies[list(BODY_COLUMNS)].reset_index(drop=True)
    compact.attrs["item_codes"] = list(bodies.attrs.get("item_codes", []))
    return Rollup(
        as_of=as_of, prefecture_code=prefecture_code, thresholds=thresholds, bodies=compact,
        items=list(zip(items["item"], items["item_name"])), tables=tables,
        figures={key: json.dumps(fig, ensure_ascii=False, separators=(",", ":")) for key, fig in figures.items()},
    )


def rollup(session: Session, actor: Actor, as_of: dt.date, prefecture_code: str | None = None) -> Rollup:
    """Return the roll-up of the whole country (``DASHBOARD_NATIONAL``) or of one prefecture in the actor's reach.

    Computed once per (scope, as-of date, thresholds, data version) and shared (``ROLLUP_CACHE``).

    :raise PermissionDenied: national without ``DASHBOARD_NATIONAL``, or no delay view at all.
    :raise NotFound: a prefecture outside the actor's reach.
    """
    if prefecture_code is None:
        if not can(actor, Permission.DASHBOARD_NATIONAL):
            raise PermissionDenied("全国ダッシュボードを閲覧する権限がありません。")
    else:
        delays.narrow(delays.reach_of(actor), prefecture_code)
    thresholds = delays.get_thresholds(session)
    if ROLLUP_CACHE is None:
        return _compute_rollup(session, as_of, prefecture_code, thresholds)
    replay = as_of < clock.today()
    key = (f"rollup:{prefecture_code or 'national'}:{as_of.isoformat()}:{int(replay)}:{thresholds!r}:"
           f"{delays.data_version(session)!r}")
    return ROLLUP_CACHE.get_or_compute(key, lambda: _compute_rollup(session, as_of, prefecture_code, thresholds))


@dataclass
class BodySignals:
    """One body's delay state on a date, as its home panel shows it: small, so it is cached per body."""

    status: str
    rate: float
    signals: pd.DataFrame  # with the Japanese ``explanation`` of each signal


def body_signals(session: Session, actor: Actor, as_of: dt.date, body_code: str) -> BodySignals:
    """Return the status, completion rate and explained signals of one body in the actor's reach.

    The home page of every municipal user shows this; it is computed once per (body, as-of date,
    thresholds, data version) and shared like the roll-ups (``BODY_CACHE``).

    :raise NotFound: a body outside the actor's reach (an ``authz.denied`` entry is written).
    """
    from pmo.orgs.service import get_body

    get_body(session, actor, body_code, Permission.DELAY_VIEW)  # the reach is checked before any cache

    def compute() -> BodySignals:
        state = delays.delay_state(session, actor, as_of, body_code=body_code)
        row = state.bodies.iloc[0] if len(state.bodies) else None
        rate = float(row["rate"]) if row is not None and row["rate"] == row["rate"] else 0.0
        return BodySignals(status=str(row["status"]) if row is not None else "on_track", rate=rate,
                           signals=delays.explained(state.signals))

    if BODY_CACHE is None:
        return compute()
    thresholds = delays.get_thresholds(session)
    key = (f"body:{body_code}:{as_of.isoformat()}:{int(as_of < clock.today())}:{thresholds!r}:"
           f"{delays.data_version(session)!r}")
    return BODY_CACHE.get_or_compute(key, compute)


@dataclass
class Dashboard:
    """The tables, figures and definitions of one dashboard page."""

    as_of: dt.date
    title: str
    prefecture_code: str | None
    rollup: Rollup
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)  # Plotly figure JSON
    definitions: dict[str, str] = field(default_factory=dict)
    followup: pd.DataFrame | None = None
    cases_by_body: dict[str, Any] = field(default_factory=dict)
    filter_options: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        return {**self.rollup.summary, "open_cases": len(self.cases_by_body)}


def _case_labels(cases_by_body: dict[str, Any]) -> dict[str, str]:
    return {code: f"{case.status.label}（No.{case.id}）" for code, case in cases_by_body.items()}


def dashboard(session: Session, actor: Actor, as_of: dt.date, prefecture_code: str | None = None,
              flt: rules.FollowupFilter | None = None) -> Dashboard:
    """Return the national dashboard, or one prefecture's (its bodies only) when ``prefecture_code`` is given.

    :raise PermissionDenied: national view without ``DASHBOARD_NATIONAL``.
    :raise NotFound: a prefecture outside the actor's reach.
    """
    flt = flt or rules.FollowupFilter()
    names = prefecture_names(session)
    if prefecture_code is None:
        title = "全国"
    else:
        if prefecture_code not in names:
            raise NotFound("都道府県が見つかりません。")
        title = names[prefecture_code]
    roll = rollup(session, actor, as_of, prefecture_code)
    thresholds = delays.thresholds_dict(roll.thresholds)
    board = Dashboard(as_of=as_of, title=title, prefecture_code=prefecture_code, rollup=roll,
                      tables={k: v for k, v in roll.tables.items() if k in FIGURE_TABLES}, figures=dict(roll.figures))
    bodies = roll.bodies
    codes = set(bodies["body_code"])
    board.cases_by_body = {
        code: case for code, case in case_service.open_case_by_body(session, actor).items() if code in codes
    }
    board.followup = rules.followup_bodies(bodies, flt)
    board.tables["followup"] = rules.followup_table(board.followup, names, KIND_LABELS, _case_labels(board.cases_by_body))
    for key in ("status", "rate_item", "rate_prefecture", "heatmap", "trend", "followup"):
        board.definitions[key] = rules.definition_text(key, thresholds)
    if prefecture_code is not None:
        board.definitions["rate_prefecture"] = (
            "団体ごとの（完了 ＋ 対象外）÷ 該当サブタスク数です。状況は最も重い遅延の兆候です。"
        )
        board.definitions["heatmap"] = "各マスは、その団体のその作業項目の該当サブタスクの（完了 ＋ 対象外）÷ サブタスク数です。"
    board.filter_options = _filter_options(bodies, roll.items, names)
    return board


FIGURE_TABLES = ("status", "rate_item", "rate_prefecture", "heatmap", "trend")


def _filter_options(bodies: pd.DataFrame, items: list[tuple[str, str]],
                    names: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    codes = sorted(set(bodies["prefecture_code"]))
    kinds = [k for k in BodyKind if k.value in set(bodies["kind"])]
    vendors = sorted({v for vs in bodies["vendors"] for v in vs})
    from pmo.orgs.service import POPULATION_CLASSES

    return {
        "prefecture": [(c, names.get(c, c)) for c in codes],
        "kind": [(k.value, k.label) for k in kinds],
        "population_class": [(label, label) for _, _, label in POPULATION_CLASSES],
        "signal": [(k.value, k.label) for k in delay_rules.SignalKind],
        "item": [(i, f"{i} {n}") for i, n in items],
        "vendor": [(v, v) for v in vendors],
        "status": [("", "遅延・重大"), ("critical", "重大のみ"), ("delayed", "遅延のみ"), ("notice", "注意のみ")],
        "sort": [("status", "状況の重い順"), ("signals", "兆候の多い順"), ("rate", "完了率の低い順"),
                 ("population", "人口の多い順"), ("code", "団体コード順")],
    }


# --- the body page -------------------------------------------------------------------------------


@dataclass
class BodyView:
    body: Body
    as_of: dt.date
    status: str
    rate: float | None
    plans: pd.DataFrame
    signals: pd.DataFrame
    gantt: dict[str, Any]
    table: pd.DataFrame


def body_view(session: Session, actor: Actor, code: str, as_of: dt.date) -> BodyView:
    """Return one body's plans against actuals, its forecast and each signal explained."""
    from pmo.orgs.service import get_body

    body = get_body(session, actor, code, Permission.DELAY_VIEW)
    state = delays.delay_state(session, actor, as_of, body_code=code)
    plans = state.plans.copy()
    for column, fn in (("planned_start", delay_rules.effective_starts), ("actual_start", delay_rules.effective_starts),
                       ("planned_end", delay_rules.effective_ends), ("actual_end", delay_rules.effective_ends)):
        plans[f"{column}_eff"] = pd.Series(fn(plans[column], plans[f"{column}_precision"]), index=plans.index)
    # Actual dates after the as-of date had not happened yet.
    for column in ("actual_start_eff", "actual_end_eff"):
        plans.loc[plans[column] > pd.Timestamp(as_of), column] = pd.NaT
    applicable = plans[~plans["not_applicable"]]
    row = state.bodies.iloc[0] if len(state.bodies) else None
    table = pd.DataFrame({
        "サブタスク": plans["subtask"], "名称": plans["subtask_name"],
        "状態": [delay_rules.SubtaskStatus(s).label for s in plans["status"]],
        "計画開始": [_fmt(d, p, "start") for d, p in zip(plans["planned_start"], plans["planned_start_precision"])],
        "計画終了": [_fmt(d, p, "end") for d, p in zip(plans["planned_end"], plans["planned_end_precision"])],
        "実績開始": [_fmt(d, p, "start") for d, p in zip(plans["actual_start"], plans["actual_start_precision"])],
        "実績終了": [_fmt(d, p, "end") for d, p in zip(plans["actual_end"], plans["actual_end_precision"])],
        "完了見込み": [_fmt(d, "day", "end") for d in plans["forecast_end"]],
        "マイルストーン": [_fmt(d, "day", "end") for d in plans["milestone"]],
        "ベンダー": plans["vendor"].fillna(""),
    })
    return BodyView(
        body=body, as_of=as_of, status=str(row["status"]) if row is not None else "on_track",
        rate=float(row["rate"]) if row is not None and not pd.isna(row["rate"]) else None,
        plans=plans, signals=delays.explained(state.signals), gantt=charts.gantt(applicable, as_of), table=table,
    )


def _fmt(value: Any, precision: Any, _end: str) -> str:
    if value is None or pd.isna(value):
        return ""
    day = pd.Timestamp(value).date()
    if precision == "month":
        return f"{day.year}-{day.month:02d}（月）"
    return day.isoformat()


# --- the steering-meeting report ---------------------------------------------------------------------


@dataclass
class SteeringReport:
    as_of: dt.date
    previous: MonthlySnapshot | None
    summary: dict[str, Any]
    sections: dict[str, pd.DataFrame]
    titles: dict[str, str]
    definitions: dict[str, str]


SECTION_TITLES = {
    "national": "全国の状況",
    "signals": "遅延の兆候の内訳",
    "prefecture": "都道府県別",
    "item": "作業項目別",
    "change_summary": "前回報告からの変化（状況別団体数）",
    "changes": "前回報告から状況が変わった団体",
    "at_risk": "重大な遅延のある団体とフォロー状況",
}


def prefecture_summary(bodies: pd.DataFrame, plans: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Return per prefecture the count of bodies per status and the completion rate."""
    rates = rules.rate_by_prefecture(plans, names).set_index("都道府県コード")
    counts = bodies.groupby("prefecture_code")["status"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=rules.STATUS_ORDER, fill_value=0)
    out = pd.DataFrame({"都道府県コード": rates.index, "都道府県": rates["都道府県"].to_numpy(),
                        "団体数": rates["団体数"].to_numpy()})
    for status in rules.STATUS_ORDER:
        out[rules.STATUS_LABEL[status]] = [int(counts.at[c, status]) if c in counts.index else 0 for c in out["都道府県コード"]]
    out["完了率(%)"] = rates["完了率(%)"].to_numpy()
    return out


def steering_report(session: Session, actor: Actor, as_of: dt.date) -> SteeringReport:
    """Return the 全体推進会議 report for ``as_of``: national, by prefecture, by 作業項目, changes, at-risk bodies."""
    if not can(actor, Permission.REPORT_STEERING):
        raise PermissionDenied("全体推進会議の報告を作成する権限がありません。")
    names = prefecture_names(session)
    roll = rollup(session, actor, as_of)
    bodies = roll.bodies
    thresholds = delays.thresholds_dict(roll.thresholds)
    previous = previous_snapshot(session, as_of)
    cases = case_service.open_case_by_body(session, actor)
    sections: dict[str, pd.DataFrame] = {
        "national": roll.tables["status"],
        "signals": roll.tables["signals"],
        "prefecture": roll.tables["prefecture"],
        "item": roll.tables["rate_item"],
    }
    if previous is not None:
        before = snapshot_bodies(session, previous, delays.Reach(national=True), roll.thresholds)
        sections["change_summary"] = rules.change_summary(before, bodies)
        sections["changes"] = rules.changes_since(before, bodies)
    at_risk = rules.followup_bodies(bodies, rules.FollowupFilter(status="critical"))
    table = rules.followup_table(at_risk, names, KIND_LABELS, {c: case.status.label for c, case in cases.items()})
    table["次回連絡日"] = [
        cases[c].next_contact_date.isoformat() if c in cases and cases[c].next_contact_date else "" for c in at_risk["body_code"]
    ]
    table["原因"] = [cases[c].cause.label if c in cases else "" for c in at_risk["body_code"]]
    sections["at_risk"] = table.drop(columns=["兆候の種類"])
    closed = bodies["done"].fillna(0).sum() + bodies["not_applicable"].fillna(0).sum()
    total = bodies["total"].fillna(0).sum()
    counts = case_service.case_counts(session, actor)
    summary = {
        "bodies": int(len(bodies)), "rate": round(100 * closed / total, 1) if total else 0.0,
        "critical": int((bodies["status"] == "critical").sum()),
        "attention": int(bodies["status"].isin(rules.ATTENTION).sum()),
        "open_cases": counts["open"], "watching_cases": counts["watching"], "resolved_cases": counts["resolved"],
    }
    definitions = {k: rules.definition_text(k, thresholds) for k in ("status", "rate_item", "rate_prefecture", "changes")}
    return SteeringReport(as_of=as_of, previous=previous, summary=summary, sections=sections,
                          titles=SECTION_TITLES, definitions=definitions)


# --- files -----------------------------------------------------------------------------------------


def _cell_value(value: Any) -> Any:
    if value is None or (not isinstance(value, (list, str)) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def write_xlsx(sheets: dict[str, pd.DataFrame], notes: dict[str, str] | None = None) -> bytes:
    """Return an .xlsx with one sheet per table; text cells are typed as strings (never formulas)."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    header_fill = PatternFill("solid", fgColor="E8F1FE")
    for title, frame in sheets.items():
        sheet = workbook.create_sheet(title=title[:31])
        row_offset = 1
        if notes and notes.get(title):
            cell = sheet.cell(row=1, column=1, value=notes[title])
            cell.data_type = "s"
            row_offset = 3
        for col, name in enumerate(frame.columns, start=1):
            cell = sheet.cell(row=row_offset, column=col, value=str(name))
            cell.data_type = "s"
            cell.font = Font(bold=True)
            cell.fill = header_fill
            sheet.column_dimensions[cell.column_letter].width = max(10, min(40, 2 * len(str(name)) + 4))
        for r, record in enumerate(frame.itertuples(index=False), start=row_offset + 1):
            for c, value in enumerate(record, start=1):
                value = _cell_value(value)
                cell = sheet.cell(row=r, column=c, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # a leading "=" stays text
        sheet.freeze_panes = sheet.cell(row=row_offset + 1, column=1)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def write_csv(frame: pd.DataFrame) -> bytes:
    """Return the table as CSV in UTF-8 with BOM (opens in Excel); text that looks like a formula is quoted with '."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([str(c) for c in frame.columns])
    for record in frame.itertuples(index=False):
        row = []
        for value in record:
            value = _cell_value(value)
            if value is None:
                row.append("")
            elif isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
                row.append("'" + value)
            else:
                row.append(value)
        writer.writerow(row)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
