"""Pure roll-ups behind the figures: counts, completion rates, heat map, follow-up filter, changes."""

from __future__ import annotations

import pandas as pd

from pmo.reports import rules


def bodies(**cols):
    base = {
        "body_code": ["011001", "011002", "021001", "021002"],
        "body_name": ["甲市", "乙町", "丙市", "丁村"],
        "prefecture_code": ["01", "01", "02", "02"],
        "kind": ["city", "town", "city", "village"],
        "population": [200_000, 8_000, 60_000, 900],
        "population_class": ["10万〜30万人", "1万人未満", "5万〜10万人", "1万人未満"],
        "status": ["critical", "delayed", "notice", "on_track"],
        "signal_count": [5, 2, 1, 0],
        "signal_mask": [0b100100, 0b001000, 0b000010, 0],
        "item_mask": [0b01, 0b10, 0b01, 0],
        "worst": ["B-2 マイルストーン未達のおそれ（3日）", "C-3 完了遅れ（40日）", "A-6 計画終了がマイルストーン超過（3日）", None],
        "signal_kinds": [["no_plan", "milestone_at_risk"], ["late_finish"], ["plan_after_milestone"], []],
        "rate": [0.2, 0.5, 0.9, 1.0], "done": [2, 5, 9, 10], "not_applicable": [0, 0, 0, 0], "total": [10, 10, 10, 10],
        "vendors": [["北斗"], ["みらい"], ["北斗"], []],
    }
    base.update(cols)
    frame = pd.DataFrame(base)
    frame.attrs["item_codes"] = ["B", "C"]
    return frame


def plans():
    return pd.DataFrame({
        "body_code": ["011001", "011001", "011002", "021001"],
        "body_name": ["甲市", "甲市", "乙町", "丙市"],
        "prefecture_code": ["01", "01", "01", "02"],
        "item": ["A", "B", "A", "A"], "item_name": ["計画・準備", "住基", "計画・準備", "計画・準備"],
        "sort_order": [1, 2, 1, 1],
        "status": ["done", "not_started", "not_applicable", "in_progress"],
    })


def test_status_counts_cover_every_status_in_order():
    table = rules.status_counts(bodies())
    assert list(table["状況"]) == ["順調", "注意", "遅延", "重大"]
    assert list(table["団体数"]) == [1, 1, 1, 1] and list(table["割合(%)"]) == [25.0] * 4


def test_completion_counts_done_and_not_applicable_but_not_in_progress():
    item = rules.rate_by_item(plans()).set_index("作業項目")
    assert item.loc["A", "完了率(%)"] == round(100 * 2 / 3, 1) and item.loc["B", "完了率(%)"] == 0.0
    pref = rules.rate_by_prefecture(plans(), {"01": "北海道", "02": "青森県"}).set_index("都道府県")
    assert pref.loc["北海道", "完了率(%)"] == round(100 * 2 / 3, 1) and pref.loc["青森県", "完了率(%)"] == 0.0
    assert pref.loc["北海道", "団体数"] == 2


def test_heatmap_leaves_cells_without_subtasks_empty():
    wide = rules.heatmap(plans(), {"01": "北海道", "02": "青森県"}).set_index("名称")
    assert wide.loc["北海道", "A"] == 100.0 and wide.loc["北海道", "B"] == 0.0
    assert pd.isna(wide.loc["青森県", "B"])


def test_followup_default_is_delayed_and_critical_and_filters_combine():
    rows = rules.followup_bodies(bodies(), rules.FollowupFilter())
    assert list(rows["body_code"]) == ["011001", "011002"]
    assert list(rules.followup_bodies(bodies(), rules.FollowupFilter(signal="milestone_at_risk"))["body_code"]) == ["011001"]
    assert list(rules.followup_bodies(bodies(), rules.FollowupFilter(item="C"))["body_code"]) == ["011002"]
    assert list(rules.followup_bodies(bodies(), rules.FollowupFilter(vendor="北斗", status="notice"))["body_code"]) == ["021001"]
    assert rules.followup_bodies(bodies(), rules.FollowupFilter(population_class="1万人未満", kind="city")).empty
    assert list(rules.followup_bodies(bodies(), rules.FollowupFilter(sort="rate"))["body_code"]) == ["011001", "011002"]


def test_changes_since_lists_worse_first():
    before = bodies(status=["delayed", "delayed", "critical", "on_track"])
    now = bodies()
    changes = rules.changes_since(before, now)
    assert list(changes["団体コード"]) == ["011001", "021001"]
    assert list(changes["変化"]) == ["悪化", "改善"]
    summary = rules.change_summary(before, now).set_index("状況")
    assert summary.loc["遅延", "増減"] == -1 and summary.loc["重大", "増減"] == 0


def test_definitions_name_the_thresholds_in_force():
    text = rules.definition_text("status", {"delayed_days": 45, "critical_days": 120, "no_plan": "delayed"})
    assert "45日以上" in text and "120日以上" in text and "計画未入力」は遅延" in text
