"""Roll-ups of a delay state into the tables behind every figure and report (pure pandas).

Each table function takes frames produced by ``pmo.delays.service.judge`` and returns a DataFrame
whose columns are already the Japanese headers shown on screen and written to CSV/xlsx, so the
chart, its table and its download can never disagree. How each number is counted is written once,
in ``DEFINITIONS``, and shown beside the figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pmo.delays.rules import BODY_STATUS_LABELS, SIGNAL_LABELS, BodyStatus, SignalKind


def has_signal(bodies: pd.DataFrame, kind: str) -> pd.Series:
    """Return a mask of the bodies with a signal of ``kind`` (bit ``kind`` of ``signal_mask``)."""
    codes = [k.value for k in SignalKind]
    if kind not in codes:
        return pd.Series(False, index=bodies.index)
    mask = np.right_shift(bodies["signal_mask"].to_numpy(dtype=np.int64), codes.index(kind)) & 1
    return pd.Series(mask == 1, index=bodies.index)


def has_item(bodies: pd.DataFrame, item: str) -> pd.Series:
    """Return a mask of the bodies with a signal in 作業項目 ``item`` (``item_mask``, ``attrs['item_codes']``)."""
    items = list(bodies.attrs.get("item_codes", []))
    if item not in items:
        return pd.Series(False, index=bodies.index)
    mask = np.right_shift(bodies["item_mask"].to_numpy(dtype=np.int64), items.index(item)) & 1
    return pd.Series(mask == 1, index=bodies.index)

STATUS_ORDER = [s.value for s in BodyStatus]
STATUS_LABEL = {s.value: label for s, label in BODY_STATUS_LABELS.items()}
SIGNAL_LABEL = {k.value: label for k, label in SIGNAL_LABELS.items()}
ATTENTION = ("delayed", "critical")  # statuses that put a body on the follow-up list


@dataclass(frozen=True)
class Definition:
    title: str
    text: str


DEFINITIONS: dict[str, Definition] = {
    "status": Definition(
        "団体の状況別の団体数",
        "各団体の状況は、基準日時点で成立している遅延の兆候のうち最も重いものです（兆候がなければ「順調」）。"
        "兆候は作業項目カタログのうち団体の区分に該当するサブタスクごとに判定します。"
        "注意・遅延・重大の区分は日数の設定値（遅延：{delayed_days}日以上、重大：{critical_days}日以上）により、"
        "「マイルストーン未達のおそれ」は常に重大、「計画未入力」は{no_plan}です。",
    ),
    "rate_item": Definition(
        "作業項目別の完了率",
        "完了率 ＝（完了 ＋ 対象外）÷ 該当するサブタスクの数。作業項目に属する全団体のサブタスクを合計して計算します。"
        "実績終了日が基準日以前のものを完了とし、進捗率だけでは完了としません。",
    ),
    "rate_prefecture": Definition(
        "都道府県別の完了率",
        "都道府県内の全団体（県自身、市区町村、広域連合）の該当サブタスクを合計し、"
        "（完了 ＋ 対象外）÷ サブタスク数で計算します。",
    ),
    "heatmap": Definition(
        "都道府県 × 作業項目の完了率",
        "各マスは、その都道府県内の全団体について、その作業項目の該当サブタスクの（完了 ＋ 対象外）÷ サブタスク数です。"
        "該当するサブタスクがない組合せは空欄です。",
    ),
    "trend": Definition(
        "月次の推移",
        "月次締め（各月末時点で凍結した計画・実績）ごとに、その月末を基準日として同じ判定を行った結果です。"
        "締め後に入力された修正は反映されません。",
    ),
    "followup": Definition(
        "フォローが必要な団体",
        "状況が「遅延」または「重大」の団体です。最も重い兆候、兆候の数、完了率、未解決のフォローを示します。",
    ),
    "changes": Definition(
        "前回報告からの変化",
        "前回報告は基準日より前の直近の月次締めです。その月末時点と基準日時点の状況を団体ごとに比べます。",
    ),
}


def definition_text(key: str, thresholds: Mapping[str, object]) -> str:
    """Return the definition of a figure with the thresholds in force filled in."""
    values = dict(thresholds)
    no_plan = values.get("no_plan")
    values["no_plan"] = {"notice": "注意", "delayed": "遅延", "critical": "重大"}.get(str(no_plan), no_plan)
    return DEFINITIONS[key].text.format(**values)


def status_counts(bodies: pd.DataFrame) -> pd.DataFrame:
    """Return the number and share of bodies per status, in status order."""
    counts = bodies["status"].value_counts().reindex(STATUS_ORDER, fill_value=0)
    total = int(counts.sum())
    return pd.DataFrame({
        "状況": [STATUS_LABEL[s] for s in STATUS_ORDER],
        "団体数": counts.to_numpy(dtype=int),
        "割合(%)": [round(100 * c / total, 1) if total else 0.0 for c in counts],
    })


def _rate(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    closed = frame["status"].isin(["done", "not_applicable"])
    grouped = frame.assign(_closed=closed, _done=frame["status"] == "done").groupby(by, sort=False)
    out = grouped.agg(total=("_closed", "size"), closed=("_closed", "sum"), done=("_done", "sum")).reset_index()
    out["rate"] = (100 * out["closed"] / out["total"]).round(1)
    return out


def rate_by_item(plans: pd.DataFrame) -> pd.DataFrame:
    """Return the completion rate per 作業項目 over every body's applicable sub-tasks."""
    if not len(plans):
        return pd.DataFrame(columns=["作業項目", "名称", "サブタスク数", "完了", "完了＋対象外", "完了率(%)"])
    ordered = plans.sort_values("sort_order", kind="stable")
    out = _rate(ordered, ["item", "item_name"])
    return pd.DataFrame({
        "作業項目": out["item"], "名称": out["item_name"], "サブタスク数": out["total"].astype(int),
        "完了": out["done"].astype(int), "完了＋対象外": out["closed"].astype(int), "完了率(%)": out["rate"],
    })


def rate_by_prefecture(plans: pd.DataFrame, prefecture_names: Mapping[str, str]) -> pd.DataFrame:
    """Return the completion rate per prefecture (all its bodies' sub-tasks)."""
    if not len(plans):
        return pd.DataFrame(columns=["都道府県コード", "都道府県", "団体数", "サブタスク数", "完了率(%)"])
    out = _rate(plans.sort_values("prefecture_code"), ["prefecture_code"])
    bodies = plans.groupby("prefecture_code")["body_code"].nunique()
    return pd.DataFrame({
        "都道府県コード": out["prefecture_code"],
        "都道府県": [prefecture_names.get(c, c) for c in out["prefecture_code"]],
        "団体数": [int(bodies[c]) for c in out["prefecture_code"]],
        "サブタスク数": out["total"].astype(int), "完了率(%)": out["rate"],
    })


def rate_by_body(plans: pd.DataFrame, bodies: pd.DataFrame) -> pd.DataFrame:
    """Return the completion rate and status per body (for a prefecture's own page)."""
    rows = bodies.sort_values("body_code")
    return pd.DataFrame({
        "団体コード": rows["body_code"], "団体名": rows["body_name"],
        "状況": [STATUS_LABEL[s] for s in rows["status"]],
        "完了率(%)": (100 * rows["rate"].fillna(0)).round(1), "兆候数": rows["signal_count"].astype(int),
    })


def heatmap(plans: pd.DataFrame, prefecture_names: Mapping[str, str], by: str = "prefecture_code") -> pd.DataFrame:
    """Return a wide table: one row per prefecture (or body), one column per 作業項目, values = 完了率(%)."""
    if not len(plans):
        return pd.DataFrame()
    out = _rate(plans, [by, "item"])
    wide = out.pivot(index=by, columns="item", values="rate")
    items = list(dict.fromkeys(plans.sort_values("sort_order")["item"]))
    wide = wide.reindex(columns=items).sort_index()
    if by == "prefecture_code":
        labels = [prefecture_names.get(c, c) for c in wide.index]
    else:
        names = plans.drop_duplicates("body_code").set_index("body_code")["body_name"]
        labels = [names.get(c, c) for c in wide.index]
    wide.insert(0, "名称", labels)
    wide.index.name = "コード"
    return wide.reset_index()


def trend(points: Iterable[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Return, per month-end point (label, bodies frame), the count of bodies per status and the mean rate."""
    rows = []
    for label, bodies in points:
        counts = bodies["status"].value_counts()
        row: dict[str, object] = {"月": label}
        for status in STATUS_ORDER:
            row[STATUS_LABEL[status]] = int(counts.get(status, 0))
        closed = bodies["done"].fillna(0).sum() + bodies["not_applicable"].fillna(0).sum()
        total = bodies["total"].fillna(0).sum()
        row["完了率(%)"] = round(100 * closed / total, 1) if total else 0.0
        rows.append(row)
    return pd.DataFrame(rows, columns=["月", *[STATUS_LABEL[s] for s in STATUS_ORDER], "完了率(%)"])


@dataclass(frozen=True)
class FollowupFilter:
    prefecture_code: str | None = None
    kind: str | None = None
    population_class: str | None = None
    signal: str | None = None
    item: str | None = None
    vendor: str | None = None
    status: str | None = None  # default: 遅延 and 重大
    sort: str = "status"


FOLLOWUP_SORTS = {
    "status": (["_rank", "signal_count", "body_code"], [False, False, True]),
    "rate": (["rate", "body_code"], [True, True]),
    "signals": (["signal_count", "body_code"], [False, True]),
    "code": (["body_code"], [True]),
    "population": (["population", "body_code"], [False, True]),
}


def followup_bodies(bodies: pd.DataFrame, flt: FollowupFilter) -> pd.DataFrame:
    """Return the bodies needing follow-up that match the filter, sorted; same columns as ``bodies``."""
    rows = bodies
    if flt.status:
        rows = rows[rows["status"] == flt.status]
    else:
        rows = rows[rows["status"].isin(ATTENTION)]
    if flt.prefecture_code:
        rows = rows[rows["prefecture_code"] == flt.prefecture_code]
    if flt.kind:
        rows = rows[rows["kind"] == flt.kind]
    if flt.population_class:
        rows = rows[rows["population_class"] == flt.population_class]
    if flt.signal:
        rows = rows[has_signal(rows, flt.signal)]
    if flt.item:
        rows = rows[has_item(rows, flt.item)]
    if flt.vendor:
        rows = rows[[flt.vendor in vendors for vendors in rows["vendors"]]]
    columns, ascending = FOLLOWUP_SORTS.get(flt.sort, FOLLOWUP_SORTS["status"])
    rows = rows.assign(_rank=[STATUS_ORDER.index(s) for s in rows["status"]])
    return rows.sort_values(columns, ascending=ascending, kind="stable").drop(columns="_rank")


def followup_table(rows: pd.DataFrame, prefecture_names: Mapping[str, str], kind_labels: Mapping[str, str],
                   case_status: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Return the follow-up list as the table shown and exported."""
    case_status = case_status or {}
    return pd.DataFrame({
        "団体コード": rows["body_code"],
        "都道府県": [prefecture_names.get(c, c) for c in rows["prefecture_code"]],
        "団体名": rows["body_name"],
        "区分": [kind_labels.get(k, k) for k in rows["kind"]],
        "人口規模": rows["population_class"],
        "状況": [STATUS_LABEL[s] for s in rows["status"]],
        "最も重い兆候": rows["worst"].fillna(""),
        "兆候数": rows["signal_count"].astype(int),
        "兆候の種類": ["、".join(SIGNAL_LABEL[k] for k in kinds) for kinds in rows["signal_kinds"]],
        "完了率(%)": (100 * rows["rate"].fillna(0)).round(1),
        "ベンダー": ["、".join(v) for v in rows["vendors"]],
        "フォロー": [case_status.get(c, "") for c in rows["body_code"]],
    })


def changes_since(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Return the bodies whose status changed between two bodies frames (worse first)."""
    merged = previous[["body_code", "status"]].merge(
        current[["body_code", "body_name", "prefecture_code", "status"]], on="body_code", how="outer",
        suffixes=("_before", "_after"),
    )
    merged = merged.fillna({"status_before": "on_track", "status_after": "on_track"})
    merged = merged[merged["status_before"] != merged["status_after"]]
    delta = [STATUS_ORDER.index(a) - STATUS_ORDER.index(b) for b, a in zip(merged["status_before"], merged["status_after"])]
    merged = merged.assign(_delta=delta).sort_values(["_delta", "body_code"], ascending=[False, True])
    return pd.DataFrame({
        "団体コード": merged["body_code"], "団体名": merged["body_name"].fillna(""),
        "前回": [STATUS_LABEL[s] for s in merged["status_before"]],
        "今回": [STATUS_LABEL[s] for s in merged["status_after"]],
        "変化": ["悪化" if d > 0 else "改善" for d in merged["_delta"]],
    })


def change_summary(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Return per status the count of bodies before, now, and the difference."""
    before = previous["status"].value_counts().reindex(STATUS_ORDER, fill_value=0)
    after = current["status"].value_counts().reindex(STATUS_ORDER, fill_value=0)
    return pd.DataFrame({
        "状況": [STATUS_LABEL[s] for s in STATUS_ORDER], "前回": before.to_numpy(dtype=int),
        "今回": after.to_numpy(dtype=int), "増減": (after - before).to_numpy(dtype=int),
    })


def signal_counts(signals: pd.DataFrame) -> pd.DataFrame:
    """Return the number of signals and of bodies per signal kind."""
    rows = []
    for kind in SignalKind:
        part = signals[signals["signal"] == kind.value]
        rows.append({"兆候": kind.label, "件数": int(len(part)), "団体数": int(part["body_code"].nunique())})
    return pd.DataFrame(rows)
