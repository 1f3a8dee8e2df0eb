"""Plotly figures as plain JSON-ready dicts ({"data": [...], "layout": {...}}), drawn by static/js/charts.js.

Figures are built from the same tables that are shown and exported (``pmo.reports.rules``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from pmo.reports.rules import STATUS_LABEL, STATUS_ORDER

STATUS_COLORS = {"on_track": "#259d63", "notice": "#d2a400", "delayed": "#e25100", "critical": "#ce0000"}
FONT = {"family": "Noto Sans JP, Hiragino Sans, Meiryo, sans-serif", "size": 13}


def _layout(**extra: Any) -> dict[str, Any]:
    layout = {"font": FONT, "margin": {"l": 60, "r": 20, "t": 20, "b": 50}, "paper_bgcolor": "#fff",
              "plot_bgcolor": "#fff", "showlegend": False}
    layout.update(extra)
    return layout


def status_bar(table: pd.DataFrame) -> dict[str, Any]:
    """Bodies per status."""
    return {
        "data": [{"type": "bar", "x": list(table["状況"]), "y": [int(v) for v in table["団体数"]],
                  "marker": {"color": [STATUS_COLORS[s] for s in STATUS_ORDER]},
                  "text": [f"{int(v):,}" for v in table["団体数"]], "textposition": "auto",
                  "hovertemplate": "%{x}: %{y:,}団体<extra></extra>"}],
        "layout": _layout(yaxis={"title": {"text": "団体数"}}, height=300),
    }


def rate_bar(labels: list[str], rates: list[float], title: str, height: int = 320,
             hover: list[str] | None = None) -> dict[str, Any]:
    """A bar per label with a completion rate (0–100); ``hover`` adds a name to each bar's tooltip."""
    return {
        "data": [{"type": "bar", "x": labels, "y": [float(r) for r in rates], "marker": {"color": "#0031d8"},
                  "customdata": hover or labels, "text": [f"{float(r):.0f}%" for r in rates], "textposition": "outside",
                  "hovertemplate": "%{x} %{customdata}: %{y:.1f}%<extra></extra>" if hover else
                  "%{x}: %{y:.1f}%<extra></extra>"}],
        "layout": _layout(yaxis={"title": {"text": title}, "range": [0, 105]}, height=height,
                          xaxis={"tickangle": -60 if len(labels) > 15 else 0, "automargin": True}),
    }


def heatmap(table: pd.DataFrame) -> dict[str, Any]:
    """Rows × 作業項目 of completion rates."""
    if not len(table):
        return {"data": [], "layout": _layout()}
    items = [c for c in table.columns if c not in ("コード", "名称")]
    z = [[None if pd.isna(v) else float(v) for v in row] for row in table[items].itertuples(index=False)]
    return {
        "data": [{"type": "heatmap", "x": items, "y": list(table["名称"]), "z": z, "zmin": 0, "zmax": 100,
                  "colorscale": [[0, "#fde2e2"], [0.5, "#ffe8a3"], [1, "#1d8b56"]],
                  "colorbar": {"title": {"text": "完了率%"}},
                  "hovertemplate": "%{y} %{x}: %{z:.1f}%<extra></extra>"}],
        "layout": _layout(height=max(320, 18 * len(table) + 80), yaxis={"autorange": "reversed", "automargin": True},
                          xaxis={"side": "top"}, margin={"l": 90, "r": 20, "t": 40, "b": 20}),
    }


def trend(table: pd.DataFrame) -> dict[str, Any]:
    """Stacked bodies per status by month, with the completion rate on a second axis."""
    data: list[dict[str, Any]] = []
    for status in STATUS_ORDER:
        label = STATUS_LABEL[status]
        data.append({"type": "bar", "name": label, "x": list(table["月"]), "y": [int(v) for v in table[label]],
                     "marker": {"color": STATUS_COLORS[status]}})
    data.append({"type": "scatter", "mode": "lines+markers", "name": "完了率(%)", "x": list(table["月"]),
                 "y": [float(v) for v in table["完了率(%)"]], "yaxis": "y2", "line": {"color": "#1a1a1c"}})
    return {"data": data, "layout": _layout(
        barmode="stack", showlegend=True, height=340, legend={"orientation": "h", "y": -0.2},
        yaxis={"title": {"text": "団体数"}}, xaxis={"type": "category"},
        yaxis2={"title": {"text": "完了率(%)"}, "overlaying": "y", "side": "right", "range": [0, 100]},
        margin={"l": 60, "r": 70, "t": 20, "b": 50},
    )}


def _iso(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def gantt(rows: pd.DataFrame, as_of: dt.date) -> dict[str, Any]:
    """Plan against actual per sub-task, with each sub-task's milestone and the as-of date.

    ``rows``: one per sub-task with subtask, subtask_name, planned_start/end and actual_start/end as
    effective days (datetime64), forecast_end, milestone, status.
    """
    labels = list(rows["subtask"])
    day_ms = 86_400_000

    def bars(starts: pd.Series, ends: pd.Series, name: str, color: str, offset: float) -> dict[str, Any]:
        base, width, text = [], [], []
        for start, end in zip(starts, ends):
            s, e = _iso(start), _iso(end)
            if s is None or e is None:
                base.append(None)
                width.append(None)
                text.append("")
                continue
            base.append(s)
            width.append((pd.Timestamp(e) - pd.Timestamp(s)).days * day_ms + day_ms)
            text.append(f"{s} 〜 {e}")
        return {"type": "bar", "orientation": "h", "name": name, "y": labels, "base": base, "x": width,
                "marker": {"color": color}, "offset": offset, "width": 0.35, "customdata": text,
                "hovertemplate": "%{y} " + name + ": %{customdata}<extra></extra>"}

    actual_end = [end if not pd.isna(end) else (pd.Timestamp(as_of) if not pd.isna(start) else pd.NaT)
                  for start, end in zip(rows["actual_start_eff"], rows["actual_end_eff"])]
    data = [
        bars(rows["planned_start_eff"], rows["planned_end_eff"], "計画", "#9db7f9", -0.4),
        bars(rows["actual_start_eff"], pd.Series(actual_end), "実績", "#0031d8", 0.0),
        {"type": "scatter", "mode": "markers", "name": "マイルストーン", "y": labels,
         "x": [_iso(m) for m in rows["milestone"]], "marker": {"symbol": "diamond", "size": 11, "color": "#ce0000"},
         "hovertemplate": "%{y} マイルストーン: %{x}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "完了見込み", "y": labels,
         "x": [_iso(f) for f in rows["forecast_end"]],
         "marker": {"symbol": "line-ns-open", "size": 14, "color": "#e25100", "line": {"width": 3}},
         "hovertemplate": "%{y} 完了見込み: %{x}<extra></extra>"},
    ]
    return {"data": data, "layout": _layout(
        barmode="overlay", showlegend=True, height=max(360, 26 * len(labels) + 120),
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
        xaxis={"type": "date", "tickformat": "%Y-%m"},
        yaxis={"autorange": "reversed", "type": "category"},
        shapes=[{"type": "line", "x0": as_of.isoformat(), "x1": as_of.isoformat(), "yref": "paper", "y0": 0, "y1": 1,
                 "line": {"color": "#1a1a1c", "dash": "dot", "width": 2}}],
        annotations=[{"x": as_of.isoformat(), "y": 1, "yref": "paper", "text": "基準日", "showarrow": False,
                      "yanchor": "bottom", "font": {"size": 12}}],
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )}
