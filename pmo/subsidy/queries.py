"""Read side of the subsidy domain: JSON shapes, finance report totals, Plotly figures of estimates."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from pmo.accounts.permissions import Actor, Permission
from pmo.orgs.models import Body, BodyKind
from pmo.subsidy import rules, service
from pmo.subsidy.models import Application, ApplicationKind, ApplicationState, Estimate, Registration
from pmo.subsidy.rules import Category, System


def bases_json(bases: service.BodyBases) -> dict[str, Any]:
    """A body's population and base per system and category (the CLI's ``--json``)."""
    totals = bases.category_totals()
    return {
        "body": bases.body.code,
        "name": bases.body.full_name,
        "fiscal_year": bases.fiscal_year,
        "body_kind": bases.kind.value,
        "population": bases.population,
        "illustrative": bases.illustrative,
        "systems": {
            s.system.value: {"category": s.category.value, "registered": s.registered, "table_base": s.table_base,
                             "base": s.effective, "allocated": s.allocated}
            for s in bases.systems
        },
        "categories": {
            c.value: {"base": totals[c]["effective"], "allocated": totals[c]["allocated"],
                      "budget_factor": str(bases.factors[c].factor)}
            for c in Category
        },
    }


# --------------------------------------------------------------------------------------------
# Finance report


@dataclass
class Totals:
    base: int = 0
    applied: int = 0  # requested grant of submitted (and later) applications
    granted: int = 0  # approved grant
    local_share: int = 0
    eligible: int = 0
    bodies: int = 0


@dataclass
class ReportGroup:
    name: str
    code: str
    by_system: dict[System, Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_category: dict[Category, Totals] = field(default_factory=lambda: defaultdict(Totals))


def finance_report(session: Session, actor: Actor, fiscal_year: int) -> tuple[ReportGroup, list[ReportGroup], bool]:
    """National and per-prefecture totals by system and category: base, applied, granted, local share.

    Returns (national, prefectures, illustrative). Only bodies in the actor's scope count.
    """
    from pmo.orgs.service import scope_filter

    service.check_fiscal_year(fiscal_year)
    loaded = service.preload(session, fiscal_year)
    body_ids = set(session.scalars(scope_filter(
        select(Body.id).join(Registration, Registration.body_id == Body.id).where(Registration.fiscal_year == fiscal_year),
        actor, Permission.SUBSIDY_VIEW)))
    bodies = session.scalars(select(Body).where(Body.id.in_(body_ids)).options(selectinload(Body.prefecture))).all()
    apps = session.scalars(select(Application).where(
        Application.body_id.in_(body_ids), Application.fiscal_year == fiscal_year,
        Application.kind == ApplicationKind.APPLICATION, Application.state != ApplicationState.DRAFT,
        Application.state != ApplicationState.RETURNED).options(selectinload(Application.lines))).all()
    by_body: dict[int, list[Application]] = defaultdict(list)
    for app in apps:
        by_body[app.body_id].append(app)
    national = ReportGroup("全国", "00")
    prefectures: dict[str, ReportGroup] = {}
    for body in sorted(bodies, key=lambda b: b.code):
        pref_name = body.name if body.kind is BodyKind.PREFECTURE else (body.prefecture.name if body.prefecture else "")
        group = prefectures.setdefault(body.prefecture_code, ReportGroup(pref_name, body.prefecture_code))
        bases = service.body_bases(session, None, body, fiscal_year, loaded=loaded)
        for s in bases.systems:
            if s.registered:
                for g in (national, group):
                    g.by_system[s.system].base += s.allocated
                    g.by_category[s.category].base += s.allocated
        for app in by_body.get(body.id, []):
            grant = service.application_grant(session, app, bases=bases)
            for category, cg in grant.result.categories.items():
                for g in (national, group):
                    t = g.by_category[category]
                    t.applied += cg.grant
                    t.eligible += cg.eligible_within_base
                    if app.state is ApplicationState.APPROVED:
                        approved = app.granted_general if category is Category.GENERAL else app.granted_pension
                        t.granted += approved or 0
                        t.local_share += cg.eligible_within_base - (approved or 0) if category is Category.GENERAL else 0
                for line in cg.lines:
                    for g in (national, group):
                        g.by_system[line.system].eligible += line.counted
                        g.by_system[line.system].applied += line.counted
    return national, [prefectures[k] for k in sorted(prefectures)], any(
        t.illustrative for t in service.tables_in_force(session).values())


def report_xlsx(national: ReportGroup, prefectures: list[ReportGroup], fiscal_year: int, illustrative: bool) -> bytes:
    """The finance report as an xlsx workbook (one sheet by category, one by system)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "区分別"
    note = "※例示の基準額表による試算です。" if illustrative else ""
    ws.append([f"{fiscal_year}年度事業 補助金 集計（区分別）", note])
    ws.append(["都道府県", "区分", "基準額(円)", "申請額(円)", "交付決定額(円)", "地方負担額(円)"])
    for group in [national, *prefectures]:
        for category in Category:
            t = group.by_category.get(category, Totals())
            ws.append([_safe(group.name), category.value, t.base, t.applied, t.granted, t.local_share])
    ws2 = wb.create_sheet("システム別")
    ws2.append([f"{fiscal_year}年度事業 補助金 集計（システム別）", note])
    ws2.append(["都道府県", "システム", "区分", "基準額(円)", "申請の対象経費（基準額内, 円）"])
    for group in [national, *prefectures]:
        for system in System:
            t = group.by_system.get(system)
            if t is None:
                continue
            ws2.append([_safe(group.name), system.value, rules.SYSTEM_CATEGORY[system].value, t.base, t.eligible])
    for sheet in (ws, ws2):
        sheet["A1"].font = Font(bold=True)
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        for column in "ABCDEF":
            sheet.column_dimensions[column].width = 22
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _safe(text: str) -> str:
    """Keep a cell from being read as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --------------------------------------------------------------------------------------------
# Estimate charts (Plotly figure JSON, drawn by static/js/subsidy_charts.js)


def _num(value: Fraction | int) -> float:
    # Display only: the chart library needs a JS number; the money path never reads this.
    return float(value)


def _layout(title: str, yaxis: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 15}},
        "yaxis": {"title": {"text": yaxis}, "rangemode": "tozero", "separatethousands": True, "tickformat": ",d",
                  "automargin": True},
        "margin": {"l": 80, "r": 20, "t": 50, "b": 60},
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.2},
        "font": {"family": "sans-serif"},
        "height": 360,
    }


def unit_price_figure(review: service.EstimateReview, peer_prices: dict[str, list[Fraction]]) -> dict[str, Any]:
    """Box plot of peer 単価 (円/人月) by 作業者区分, with this estimate's rates marked."""
    classes = sorted({line.worker_class for line in review.estimate.lines if service.monthly_price(line)}
                     | set(peer_prices))
    xs, ys = [], []
    for cls in classes:
        for price in peer_prices.get(cls, []):
            xs.append(cls)
            ys.append(_num(price))
    mine_x, mine_y, text = [], [], []
    for line in review.estimate.lines:
        price = service.monthly_price(line)
        if price is not None:
            mine_x.append(line.worker_class)
            mine_y.append(_num(price))
            text.append(f"{line.line_no}行目 {line.work_item}")
    return {
        "data": [
            {"type": "box", "x": xs, "y": ys, "name": "他の見積", "boxpoints": "all", "jitter": 0.3,
             "marker": {"color": "#5c7fa8", "size": 5}, "line": {"color": "#1d3f6e"}},
            {"type": "scatter", "mode": "markers", "x": mine_x, "y": mine_y, "text": text, "name": "この見積",
             "marker": {"color": "#c41a1a", "symbol": "diamond", "size": 12, "line": {"color": "#fff", "width": 1}}},
        ],
        "layout": _layout("作業者区分別の単価（円/人月）", "円/人月"),
    }


def peer_totals_figure(review: service.EstimateReview, metric: str, named: bool = False) -> dict[str, Any]:
    """Box plot of peers' total 工数 (人月) or cost (円) for this system, with this estimate marked; each
    peer's body and vendor on hover only when ``named`` (finance reviewers: ``service.may_read_review``)."""
    est = review.estimate
    if metric == "effort":
        values = [_num(service.effort_months(p)) for p in review.peers]
        mine = _num(service.effort_months(est))
        title, axis = f"総工数の比較（{est.system}・{review.population_class.label}）", "人月"
    else:
        values = [_num(p.total) for p in review.peers]
        mine = _num(est.total)
        title, axis = f"見積総額の比較（{est.system}・{review.population_class.label}）", "円"
    labels = [f"{p.body.name} {p.vendor}" if named else "同規模団体の見積" for p in review.peers]
    return {
        "data": [
            {"type": "box", "y": values, "x": [est.system] * len(values), "name": f"同規模団体の見積（{len(values)}件）",
             "boxpoints": "all", "jitter": 0.3, "text": labels, "marker": {"color": "#5c7fa8", "size": 6},
             "line": {"color": "#1d3f6e"}},
            {"type": "scatter", "mode": "markers", "x": [est.system], "y": [mine], "name": f"この見積（{est.vendor}）",
             "marker": {"color": "#c41a1a", "symbol": "diamond", "size": 14, "line": {"color": "#fff", "width": 1}}},
        ],
        "layout": _layout(title, axis),
    }


@dataclass(frozen=True)
class VendorComparison:
    estimates: list[Estimate]
    phases: list[str]
    amounts: dict[tuple[str, int], int]  # (phase, estimate id) -> yen

    def figure(self) -> dict[str, Any]:
        data = [{"type": "bar", "name": e.vendor, "x": self.phases,
                 "y": [_num(self.amounts.get((ph, e.id), 0)) for ph in self.phases]} for e in self.estimates]
        layout = _layout("工程別の見積額（事業者別）", "円")
        layout["barmode"] = "group"
        return {"data": data, "layout": layout}


def vendor_comparison(session: Session, body: Body, system: str, fiscal_year: int) -> VendorComparison:
    """Several vendors' estimates of one body, system and fiscal-year project, by 工程."""
    estimates = list(session.scalars(select(Estimate).where(
        Estimate.body_id == body.id, Estimate.system == system, Estimate.fiscal_year == fiscal_year)
        .options(selectinload(Estimate.lines)).order_by(Estimate.vendor, Estimate.id)))
    order = [p.value for p in rules.Phase]
    amounts: dict[tuple[str, int], int] = defaultdict(int)
    seen: list[str] = []
    for e in estimates:
        for line in e.lines:
            phase = rules.phase_of(line.phase)
            name = phase.value if phase else line.phase
            amounts[(name, e.id)] += line.amount
            if name not in seen:
                seen.append(name)
    phases = sorted(seen, key=lambda p: order.index(p) if p in order else len(order))
    return VendorComparison(estimates, phases, dict(amounts))


def figure_json(figure: dict[str, Any]) -> str:
    """Serialise a figure for a <script type="application/json"> block (no '</' can close the tag)."""
    return json.dumps(figure, ensure_ascii=False).replace("</", "<\\/")
