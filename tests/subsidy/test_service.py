"""Subsidy use cases against a real database: scope, workflow (AC-07), base tables, transfers, estimates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from pmo.accounts.models import Role, User
from pmo.accounts.service import actor_for
from pmo.audit.models import AuditEntry
from pmo.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from pmo.orgs.models import Body, BodyKind, Ministry
from pmo.subsidy import rules, service
from pmo.subsidy.models import ApplicationState, BaseTable, Registration
from pmo.subsidy.rules import Category, System
from tests.conftest import CITY_A, CITY_B, CITY_C, PREF_X, PREF_Y

NHI, PENSION, CARE = System.NATIONAL_HEALTH_INSURANCE, System.NATIONAL_PENSION, System.LONG_TERM_CARE


def _costs(app, **by_system):
    return [service.LineInput(System(line.system), by_system.get(line.system, 0), 0) for line in app.lines]


@pytest.fixture
def otaru_app(db_session, actor, register, body):
    staff = actor(Role.BODY_STAFF, CITY_A)
    register(staff, CITY_A, {NHI, PENSION})
    app = service.create_application(db_session, staff, body(CITY_A), 2014)
    service.update_lines(db_session, staff, app, _costs(app, 国民健康保険=1_500_000, 国民年金=900_000), app.version)
    return staff, app


# --- bases ----------------------------------------------------------------------------------


def test_base_follows_the_table_and_is_labelled_illustrative(db_session, body):
    bases = service.body_bases(db_session, None, body(CITY_A), 2014)
    table = service.rules_table(db_session)
    expected = rules.base_amount(table, 2014, "municipality", NHI, body(CITY_A).population).amount
    assert bases.get(NHI).table_base == expected == bases.get(NHI).effective
    assert bases.illustrative is True
    assert bases.get(NHI).working.explain()[-1].startswith("千円未満切り捨て")


def test_budget_scales_every_registered_base(db_session, actor, register, body):
    staff = actor(Role.BODY_STAFF, CITY_A)
    register(staff, CITY_A, {NHI})
    register(actor(Role.BODY_STAFF, CITY_B), CITY_B, {NHI})
    before = service.body_bases(db_session, None, body(CITY_A), 2014).get(NHI).table_base
    other = service.body_bases(db_session, None, body(CITY_B), 2014).get(NHI).table_base
    finance = actor(Role.FINANCE_OFFICER)
    budget = (before + other) // 2
    service.set_budget(db_session, finance, 2014, Category.GENERAL, budget, 0)
    bases = service.body_bases(db_session, None, body(CITY_A), 2014)
    factor = bases.factors[Category.GENERAL]
    assert factor.total == before + other and factor.budget == budget
    assert bases.get(NHI).scaled == rules.floor_to_1000(before * factor.factor) < before


def test_refused_table_keeps_the_one_in_force(db_session, actor):
    finance = actor(Role.FINANCE_OFFICER)
    old = service.tables_in_force(db_session)[2014]
    falling = "fiscal_year,body_kind,system,population,amount_thousand_yen\n2014,municipality,国民健康保険,0,3000\n2014,municipality,国民健康保険,10000,2000\n"
    with pytest.raises(rules.BaseTableError) as info:
        service.load_base_table(db_session, finance, falling, "bad.csv")
    assert info.value.problems[0].row == 3
    assert "下回っています" in info.value.problems[0].message
    assert service.tables_in_force(db_session)[2014].id == old.id


def test_loaded_table_replaces_only_its_year_and_records_who(db_session, actor):
    finance = actor(Role.FINANCE_OFFICER)
    rows = ["fiscal_year,body_kind,system,population,amount_thousand_yen"]
    for system in rules.ELIGIBLE_SYSTEMS[rules.BodyKind.MUNICIPALITY]:
        rows += [f"2015,municipality,{system},0,1000", f"2015,municipality,{system},100000,5000.5"]
    before = service.tables_in_force(db_session)
    [table] = service.load_base_table(db_session, finance, "\n".join(rows), "2015.csv")
    now = service.tables_in_force(db_session)
    assert now[2015].id == table.id and not table.illustrative and table.loaded_by_login == finance.login_id
    assert now[2014].id == before[2014].id
    assert any(r.amount == 5_000_500 for r in table.rows)
    assert db_session.get(BaseTable, before[2015].id).in_force is False


def test_only_base_table_managers_load_tables(db_session, actor):
    with pytest.raises(PermissionDenied):
        service.load_base_table(db_session, actor(Role.BODY_STAFF, CITY_A), "x", "x.csv")


def test_stale_table_edit_is_a_conflict(db_session, actor):
    finance = actor(Role.FINANCE_OFFICER)
    table = service.tables_in_force(db_session)[2014]
    with pytest.raises(Conflict):
        service.edit_base_table(db_session, finance, 2014, service.table_csv(table), table.version - 1)


# --- scope ----------------------------------------------------------------------------------


def test_body_sees_only_its_own(db_session, actor, otaru_app):
    other = actor(Role.BODY_STAFF, CITY_B)
    with pytest.raises(NotFound):
        service.get_application(db_session, other, otaru_app[1].id)
    with pytest.raises(NotFound):
        service.get_body(db_session, other, CITY_A)
    denied = db_session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "authz.denied",
                                                                      AuditEntry.actor_login == other.login_id))
    assert denied == 2


def test_prefecture_checks_only_its_municipalities(db_session, actor, register, body):
    staff_c = actor(Role.BODY_STAFF, CITY_C)
    register(staff_c, CITY_C, {NHI})
    app = service.create_application(db_session, staff_c, body(CITY_C), 2014)
    service.update_lines(db_session, staff_c, app, _costs(app, 国民健康保険=1_000_000), app.version)
    service.submit_application(db_session, staff_c, app, app.version)
    with pytest.raises(NotFound):
        service.prefecture_check(db_session, actor(Role.PREFECTURE_STAFF, PREF_X), app, app.version)
    service.prefecture_check(db_session, actor(Role.PREFECTURE_STAFF, PREF_Y), app, app.version, "確認しました")
    assert app.state is ApplicationState.PREFECTURE_CHECKED


# --- workflow -------------------------------------------------------------------------------


def test_body_applies_prefecture_checks_finance_approves(db_session, actor, otaru_app):
    staff, app = otaru_app
    pref, finance = actor(Role.PREFECTURE_STAFF, PREF_X), actor(Role.FINANCE_OFFICER)
    with pytest.raises(Conflict):  # not submitted yet
        service.prefecture_check(db_session, pref, app, app.version)
    service.submit_application(db_session, staff, app, app.version)
    with pytest.raises(Conflict):  # the ministry cannot skip the prefecture for a municipality
        service.approve_application(db_session, finance, app, app.version)
    service.prefecture_check(db_session, pref, app, app.version)
    service.approve_application(db_session, finance, app, app.version, "承認")
    assert app.state is ApplicationState.APPROVED
    # 2/3 × min(base, 1,500,000) floored; 10/10 × 900,000
    assert app.granted_general == 1_000_000 and app.granted_pension == 900_000
    assert [e.action for e in app.events] == ["created", "submitted", "prefecture_checked", "approved"]
    assert app.events[-1].comment == "承認" and app.events[-1].actor_login == finance.login_id


def test_submitter_cannot_approve(db_session, actor, otaru_app):
    staff, app = otaru_app
    service.submit_application(db_session, staff, app, app.version)
    service.prefecture_check(db_session, actor(Role.PREFECTURE_STAFF, PREF_X), app, app.version)
    user = db_session.get(User, staff.user_id)
    user.role, user.body_id = Role.FINANCE_OFFICER, None  # the same person, moved to the finance desk
    user.ministry_id = db_session.scalar(select(Ministry.id).where(Ministry.code == "mhlw"))
    db_session.flush()
    with pytest.raises(PermissionDenied):
        service.approve_application(db_session, actor_for(user), app, app.version)
    assert app.state is ApplicationState.PREFECTURE_CHECKED


def test_stale_submit_is_a_conflict_and_changes_nothing(db_session, actor, otaru_app):
    staff, app = otaru_app
    version = app.version
    service.submit_application(db_session, staff, app, version)
    with pytest.raises(Conflict):
        service.submit_application(db_session, staff, app, version)
    assert app.state is ApplicationState.SUBMITTED and len(app.events) == 2


def test_return_needs_a_reason_and_reopens_for_editing(db_session, actor, otaru_app):
    staff, app = otaru_app
    service.submit_application(db_session, staff, app, app.version)
    pref = actor(Role.PREFECTURE_STAFF, PREF_X)
    with pytest.raises(ValidationFailed):
        service.return_application(db_session, pref, app, app.version, " ")
    service.return_application(db_session, pref, app, app.version, "見積の内訳を添付してください")
    assert app.state is ApplicationState.RETURNED and app.state.editable
    service.update_lines(db_session, staff, app, _costs(app, 国民健康保険=1_200_000), app.version)
    service.submit_application(db_session, staff, app, app.version)
    assert app.state is ApplicationState.SUBMITTED


def test_second_round_uses_only_base_not_yet_granted(db_session, actor, register, body):
    staff, finance = actor(Role.BODY_STAFF, CITY_A), actor(Role.FINANCE_OFFICER)
    pref = actor(Role.PREFECTURE_STAFF, PREF_X)
    register(staff, CITY_A, {PENSION})
    base = service.body_bases(db_session, None, body(CITY_A), 2014).get(PENSION).effective
    first = service.create_application(db_session, staff, body(CITY_A), 2014)
    service.update_lines(db_session, staff, first, _costs(first, 国民年金=base - 500_000), first.version)
    for step in (service.submit_application,):
        step(db_session, staff, first, first.version)
    service.prefecture_check(db_session, pref, first, first.version)
    service.approve_application(db_session, finance, first, first.version)
    second = service.create_application(db_session, staff, body(CITY_A), 2014)
    assert second.round == 2
    service.update_lines(db_session, staff, second, _costs(second, 国民年金=base), second.version)
    grant = service.application_grant(db_session, second)
    assert grant.result.categories[Category.PENSION_AND_CHILD_ALLOWANCE].grant == rules.floor_to_1000(base) - first.granted_pension


def test_settlement_never_exceeds_the_granted_amount(db_session, actor, otaru_app):
    staff, app = otaru_app
    finance = actor(Role.FINANCE_OFFICER)
    service.submit_application(db_session, staff, app, app.version)
    service.prefecture_check(db_session, actor(Role.PREFECTURE_STAFF, PREF_X), app, app.version)
    service.approve_application(db_session, finance, app, app.version)
    report = service.create_settlement(db_session, staff, app)
    service.update_lines(db_session, staff, report, _costs(report, 国民健康保険=3_000_000, 国民年金=600_000), report.version)
    grant = service.application_grant(db_session, report)
    general = grant.settlement[Category.GENERAL]
    assert general.recomputed == 2_000_000 and general.settled == 1_000_000
    assert grant.settlement[Category.PENSION_AND_CHILD_ALLOWANCE].settled == 600_000


# --- registration, allocation, transfers ----------------------------------------------------


def test_allocation_above_category_base_is_refused_and_nothing_changes(db_session, actor, register, body):
    staff = actor(Role.BODY_STAFF, CITY_A)
    regs = register(staff, CITY_A, {NHI, CARE})
    bases = service.body_bases(db_session, None, body(CITY_A), 2014)
    total = bases.category_totals()[Category.GENERAL]["effective"]
    with pytest.raises(rules.SubsidyInputError):
        service.set_allocations(db_session, staff, body(CITY_A), 2014, {NHI: total, CARE: 1000},
                                service.registration_token(regs))
    assert all(r.allocated is None for r in db_session.scalars(select(Registration)))
    service.set_allocations(db_session, staff, body(CITY_A), 2014, {NHI: total, CARE: 0}, service.registration_token(regs))
    after = service.body_bases(db_session, None, body(CITY_A), 2014)
    assert after.get(NHI).allocated == total and after.get(CARE).allocated == 0


def test_stale_registration_is_a_conflict(db_session, actor, register, body):
    staff = actor(Role.BODY_STAFF, CITY_A)
    register(staff, CITY_A, {NHI})
    with pytest.raises(Conflict):
        service.register_systems(db_session, staff, body(CITY_A), 2014, {CARE}, "stale")


def test_union_transfer_moves_base_and_refuses_more_than_the_member_has(db_session, actor, register, body):
    union = db_session.scalar(select(Body).where(Body.kind == BodyKind.UNION, Body.prefecture_code == "01"))
    staff = actor(Role.BODY_STAFF, CITY_A)
    register(staff, CITY_A, {System.LATE_ELDERLY_MEDICAL})
    own = service.body_bases(db_session, None, body(CITY_A), 2014).get(System.LATE_ELDERLY_MEDICAL).effective
    with pytest.raises(rules.SubsidyInputError):
        service.transfer_base(db_session, staff, body(CITY_A), union.code, 2014, System.LATE_ELDERLY_MEDICAL, own + 1000)
    service.transfer_base(db_session, staff, body(CITY_A), union.code, 2014, System.LATE_ELDERLY_MEDICAL, 300_000)
    assert service.body_bases(db_session, None, body(CITY_A), 2014).get(System.LATE_ELDERLY_MEDICAL).effective == own - 300_000
    union_bases = service.body_bases(db_session, None, union, 2014)
    assert union_bases.get(System.LATE_ELDERLY_MEDICAL).effective == 300_000
    assert union_bases.get(System.LATE_ELDERLY_MEDICAL).registered


def test_grant_for_request_counts_transfers(db_session, actor, register, body):
    union = db_session.scalar(select(Body).where(Body.kind == BodyKind.UNION, Body.prefecture_code == "01"))
    staff = actor(Role.BODY_STAFF, CITY_A)
    register(staff, CITY_A, {System.LATE_ELDERLY_MEDICAL})
    own = service.body_bases(db_session, None, body(CITY_A), 2014).get(System.LATE_ELDERLY_MEDICAL).effective
    service.transfer_base(db_session, staff, body(CITY_A), union.code, 2014, System.LATE_ELDERLY_MEDICAL, 300_000)
    result = service.grant_for_request(db_session, None, {"body": CITY_A, "fiscal_year": 2014,
                                                           "costs": {"後期高齢者医療": 100_000_000}})
    assert result["categories"]["一般分"]["base"] == own - 300_000


# --- estimates ------------------------------------------------------------------------------


def _line(phase, item, worker, price, unit, effort, amount):
    return service.EstimateLineInput(phase, item, worker, price, unit, Decimal(effort) if effort else None, amount)


def test_estimate_flags_and_eligible_amount(db_session, actor, body):
    staff = actor(Role.BODY_STAFF, CITY_A)
    est = service.create_estimate(db_session, staff, body(CITY_A), service.EstimateInput(NHI, 2014, "A社", 9_999_999, [
        _line("設計", "基本設計", "SE", 1_000_000, "人月", "2", 2_000_000),
        _line("開発", "改修", "PG", 800_000, "人月", "1.5", 1_300_000),
        _line("設計", "システム影響度調査", "SE", 1_000_000, "人月", "1", 1_000_000),
        _line("総合運用テスト", "運用テスト", "SE", 1_000_000, "人月", "1", 1_000_000),
        _line("開発", "改修一式", "SE", None, None, None, 500_000),
    ]))
    review = service.review_estimate(db_session, staff, est)
    codes = {(f.line, f.code) for f in review.flags}
    assert (2, rules.FlagCode.ARITHMETIC) in codes
    assert (3, rules.FlagCode.NONCOVERED) in codes
    assert (4, rules.FlagCode.WRONG_PHASE) in codes
    assert (5, rules.FlagCode.LUMP_SUM) in codes
    assert (None, rules.FlagCode.TOTAL_MISMATCH) in codes
    assert review.eligible_amount == 2_000_000 + 1_300_000 + 500_000


def test_estimate_flows_into_the_application(db_session, actor, register, body):
    staff = actor(Role.BODY_STAFF, CITY_A)
    register(staff, CITY_A, {NHI})
    est = service.create_estimate(db_session, staff, body(CITY_A), service.EstimateInput(NHI, 2014, "A社", None, [
        _line("設計", "基本設計", "SE", 1_000_000, "人月", "2", 2_000_000),
        _line("設計", "PIAの実施支援", "SE", 1_000_000, "人月", "1", 1_000_000)]))
    app = service.create_application(db_session, staff, body(CITY_A), 2014)
    service.update_lines(db_session, staff, app, [service.LineInput(NHI, 0, 0, est.id)], app.version)
    assert app.lines[0].cost == 2_000_000 and app.lines[0].estimate_id == est.id


def test_estimate_rows_are_refused_whole_with_row_and_column():
    rows = [(2, {"工程": "設計", "作業項目": "基本設計", "作業者区分": "SE", "単価": "1,000,000", "単位": "人月", "工数": "2", "金額": "2000000"}),
            (3, {"工程": "開発", "作業項目": "", "作業者区分": "PG", "単価": "abc", "単位": "時間", "工数": "-1", "金額": "1.5"})]
    with pytest.raises(ValidationFailed) as info:
        service.parse_estimate_rows(rows, where="a.csv ")
    fields = [p.field for p in info.value.problems]
    assert fields == ["a.csv 3行目 作業項目", "a.csv 3行目 単価", "a.csv 3行目 単位", "a.csv 3行目 工数", "a.csv 3行目 金額"]


def test_peers_are_same_class_same_system(db_session, actor, body):
    # 小樽市 (111,299) and 函館市 (251,084) are both 10万〜30万; 青森市 too (275,192).
    lines = [_line("設計", "基本設計", "SE", 1_000_000, "人月", "2", 2_000_000)]
    for code in (CITY_B, CITY_C):
        service.create_estimate(db_session, actor(Role.BODY_STAFF, code), body(code),
                                service.EstimateInput(NHI, 2014, "B社", None, lines))
    service.create_estimate(db_session, actor(Role.BODY_STAFF, CITY_B), body(CITY_B),
                            service.EstimateInput(CARE, 2014, "B社", None, lines))
    mine = service.create_estimate(db_session, actor(Role.BODY_STAFF, CITY_A), body(CITY_A),
                                   service.EstimateInput(NHI, 2014, "A社", None, lines))
    peers = service.peer_estimates(db_session, mine)
    assert sorted(p.body.code for p in peers) == sorted([CITY_B, CITY_C])


def test_keywords_are_editable_and_stale_edits_refused(db_session, actor):
    finance = actor(Role.FINANCE_OFFICER)
    words = service.keywords(db_session)
    service.save_keywords(db_session, finance, "影響度調査\n# 注釈\n独自利用\n", service.keywords_token(words))
    assert service.keywords(db_session) == ["影響度調査", "独自利用"]
    with pytest.raises(Conflict):
        service.save_keywords(db_session, finance, "x", service.keywords_token(words))


def test_a_prefectures_own_application_goes_straight_to_the_ministry(db_session, actor, register, body):
    pref = actor(Role.PREFECTURE_STAFF, PREF_X)
    register(pref, PREF_X, {System.PUBLIC_ASSISTANCE})
    app = service.create_application(db_session, pref, body(PREF_X), 2014)
    service.update_lines(db_session, pref, app, _costs(app, 生活保護=3_000_000), app.version)
    service.submit_application(db_session, pref, app, app.version)
    assert service.available_actions(pref, app) == []  # it cannot check its own
    with pytest.raises(ValidationFailed):
        service.prefecture_check(db_session, actor(Role.PREFECTURE_STAFF, PREF_X), app, app.version)
    service.approve_application(db_session, actor(Role.FINANCE_OFFICER), app, app.version)
    assert app.state is ApplicationState.APPROVED and app.granted_general == 2_000_000


def test_a_prefecture_cannot_register_a_municipal_only_system(db_session, actor, register):
    with pytest.raises(ValidationFailed):
        register(actor(Role.PREFECTURE_STAFF, PREF_X), PREF_X, {System.NATIONAL_PENSION})


def test_seed_is_idempotent_and_loads_the_illustrative_table(db_session):
    from pmo.paths import data_dir

    before = {fy: t.id for fy, t in service.tables_in_force(db_session).items()}
    words = service.keywords(db_session)
    assert set(before) == {2014, 2015, 2016} and all(t.illustrative for t in service.tables_in_force(db_session).values())
    assert service.seed_base_table(db_session, data_dir("seed")).startswith("基準額表 0年度分")
    assert {fy: t.id for fy, t in service.tables_in_force(db_session).items()} == before
    assert service.keywords(db_session) == words and "PIA" in words
