"""Follow-up cases: open for many bodies, answer, comment, update with version checks, scope, audit."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.audit.models import AuditEntry
from pmo.core.errors import NotFound, PermissionDenied, ValidationFailed
from pmo.delays import cases
from pmo.delays.models import CaseCause, CaseStatus, EntryKind
from tests.conftest import CITY_A, CITY_B, CITY_C, PREF_X

from .factories import add_plan

D = dt.date
AS_OF = D(2015, 10, 20)


def _open(db_session, officer, codes, **kw):
    data = cases.CaseInput(title=kw.pop("title", "B-2 の遅れの確認"), cause=kw.pop("cause", CaseCause.VENDOR), **kw)
    return cases.open_cases(db_session, officer, codes, data, AS_OF)


def test_open_cases_for_many_bodies_keeps_the_signals_and_audits(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    add_plan(db_session, CITY_A, "B-2", planned_start=D(2015, 4, 1), planned_end=D(2015, 9, 30))
    opened = _open(db_session, officer, [CITY_A, CITY_C], note="ベンダーの体制を確認する")
    assert [c.body.code for c in opened] == [CITY_A, CITY_C]
    a = opened[0]
    assert a.status is CaseStatus.OPEN and a.owner_id == officer.user_id and a.version == 1
    assert "B-2 は計画終了日を20日過ぎても完了していません" in a.signal_summary
    assert "計画終了日が入力されていないサブタスク（28件）：A-6、B-3" in a.signal_summary  # one line, not 28
    assert a.signal_summary.index("［重大］") < a.signal_summary.index("［注意］")  # worst first
    assert a.subtasks == "B-2"
    assert a.batch_id and a.batch_id == opened[1].batch_id
    assert a.entries[0].kind is EntryKind.OPENED and "ベンダーの体制を確認する" in a.entries[0].text
    entries = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "case.opened")).all()
    assert {e.target_body_code for e in entries} >= {CITY_A, CITY_C}


def test_opening_needs_bodies_a_title_and_known_codes(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    with pytest.raises(ValidationFailed) as exc:
        _open(db_session, officer, [], title="")
    assert {p.field for p in exc.value.problems} == {"bodies", "title"}
    with pytest.raises(ValidationFailed) as exc:
        _open(db_session, officer, ["999999"])
    assert "999999" in exc.value.problems[0].message


def test_only_officers_open_cases(db_session, actor):
    with pytest.raises(PermissionDenied):
        _open(db_session, actor(Role.PREFECTURE_STAFF, PREF_X), [CITY_A])


def test_the_body_answers_the_prefecture_comments_others_see_nothing(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    case = _open(db_session, officer, [CITY_A])[0]
    staff = actor(Role.BODY_STAFF, CITY_A)
    entry = cases.add_entry(db_session, staff, case.id, "委託先の人員不足で遅れています。11月中に完了予定です。")
    assert entry.kind is EntryKind.ANSWER
    pref = actor(Role.PREFECTURE_STAFF, PREF_X)
    assert [c.id for c in cases.list_cases(db_session, pref)] == [case.id]
    assert cases.add_entry(db_session, pref, case.id, "県からも状況を確認します。").kind is EntryKind.COMMENT
    other = actor(Role.BODY_STAFF, CITY_B)
    assert cases.list_cases(db_session, other) == []
    with pytest.raises(NotFound):
        cases.get_case(db_session, other, case.id)
    denied = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "authz.denied")).all()
    assert any(e.target_body_code == CITY_A for e in denied)
    with pytest.raises(NotFound):
        cases.get_case(db_session, actor(Role.PREFECTURE_STAFF, "020001"), case.id)
    assert case.version == 3


def test_update_checks_the_version_and_resolving_closes_answers(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    case = _open(db_session, officer, [CITY_A])[0]
    cases.add_entry(db_session, actor(Role.BODY_STAFF, CITY_A), case.id, "回答します。")
    update = cases.CaseUpdate(status=CaseStatus.RESOLVED, cause=CaseCause.STAFFING, next_contact_date=None,
                              owner_id=officer.user_id, note="完了を確認した。")
    with pytest.raises(cases.CaseConflict) as exc:
        cases.update_case(db_session, officer, case.id, update, version=1)
    assert exc.value.current["status"] == "対応中" and exc.value.current["version"] == 2
    cases.update_case(db_session, officer, case.id, update, version=2)
    assert case.status is CaseStatus.RESOLVED and case.resolved_dt is not None
    assert "状況：対応中 → 解決" in case.entries[-1].text and "原因：ベンダー → 体制・人員" in case.entries[-1].text
    with pytest.raises(PermissionDenied):
        cases.add_entry(db_session, actor(Role.BODY_STAFF, CITY_A), case.id, "追記")
    audit_row = db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "case.updated")).one()
    assert audit_row.before["status"] == "open" and audit_row.after["status"] == "resolved"
    with pytest.raises(PermissionDenied):
        cases.update_case(db_session, actor(Role.BODY_STAFF, CITY_A), case.id, update, version=case.version)


def test_owner_must_be_an_active_officer(db_session, actor, make_user):
    officer = actor(Role.MINISTRY_OFFICER)
    staff_user = make_user(Role.BODY_STAFF, CITY_A)
    with pytest.raises(ValidationFailed):
        _open(db_session, officer, [CITY_A], owner_id=staff_user.id)


def test_counts_and_open_case_by_body(db_session, actor):
    officer = actor(Role.MINISTRY_OFFICER)
    first, second = _open(db_session, officer, [CITY_A, CITY_B])
    cases.update_case(db_session, officer, second.id, cases.CaseUpdate(
        CaseStatus.WATCHING, second.cause, None, officer.user_id), version=1)
    counts = cases.case_counts(db_session, officer)
    assert counts["open"] >= 1 and counts["watching"] >= 1
    by_body = cases.open_case_by_body(db_session, officer)
    assert by_body[CITY_A].id == first.id and by_body[CITY_B].id == second.id
