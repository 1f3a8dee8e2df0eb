"""AC-06: ministry-internal follow-up notes and finance review details never reach a body or its
prefecture, by any channel; and extra fields posted with an edit change nothing beyond the form.

One record of 市A carries three markers: a 府省内メモ on its follow-up case (``EntryKind.NOTE``), a
finance reviewer's 所見 on its estimate, and a peer estimate of 市B (whose vendor and body name only the
reviewers' comparison charts name; the body sees the peers' spread anonymously). As 団体担当職員 and 団体管理者 of 市A and as 都道府県担当 of 県X every
page, JSON answer, CSV/XLSX export, search result and audit screen is fetched and searched for the
markers (XLSX cell by cell); the same pages as the ministry officer, the finance officer and the system
admin show them, so the test fails if the filtering moves to the wrong side.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for, create_api_token
from pmo.delays import cases
from pmo.delays.models import CaseCause, CaseEntry, CaseStatus, EntryKind, FollowupCase
from pmo.orgs.models import Body
from pmo.subsidy import service as subsidy
from pmo.subsidy.models import Application, ApplicationState, Estimate, EstimateNote
from pmo.subsidy.rules import System
from tests.conftest import CITY_A, CITY_B, PREF_X, log_in

# ASCII markers: the audit screen renders values with ``tojson``, which escapes non-ASCII text.
MINISTRY_NOTE = "MINNOTE7F3A ベンダーの体制に懸念、局長まで報告"
FINANCE_NOTE = "FINNOTE9B2C 単価が過大、減額を検討"
PEER_VENDOR = "PEERVENDOR5D1E"
MARKERS = ("MINNOTE7F3A", "FINNOTE9B2C", PEER_VENDOR)
SHARED_ACTION = "SHAREDACT2E4 電話で状況を伺いました"
NHI = System.NATIONAL_HEALTH_INSURANCE
FY = 2014


def _lines(amount: int = 1_200_000) -> list[Any]:
    rows = [(1, {"工程": "設計", "作業項目": "基本設計", "作業者区分": "SE", "単価": "1200000", "単位": "人月",
                 "工数": "1", "金額": str(amount)})]
    return subsidy.parse_estimate_rows(rows)


def _register(db_session, actor, code: str) -> Body:
    body = subsidy.find_body(db_session, code)
    regs = subsidy.registrations(db_session, body, FY)
    subsidy.register_systems(db_session, actor, body, FY, {NHI}, subsidy.registration_token(regs))
    return body


@pytest.fixture
def record(db_session, make_user) -> dict[str, Any]:
    """市A's case with an internal note and a shared action, its estimate with a finance note and a
    peer estimate of 市B, its draft application; and one user per role."""
    users = {
        "muni": make_user(Role.BODY_STAFF, CITY_A), "muni_adm": make_user(Role.BODY_ADMIN, CITY_A),
        "pref": make_user(Role.PREFECTURE_STAFF, PREF_X), "min": make_user(Role.MINISTRY_OFFICER, ministry="mic"),
        "fin": make_user(Role.FINANCE_OFFICER, ministry="mhlw"), "sys": make_user(Role.SYSTEM_ADMIN, ministry="mic"),
    }
    officer, finance, staff = actor_for(users["min"]), actor_for(users["fin"]), actor_for(users["muni"])
    case = cases.open_cases(db_session, officer, [CITY_A], cases.CaseInput("遅延の原因確認", CaseCause.VENDOR),
                            dt.date(2015, 10, 15))[0]
    cases.add_entry(db_session, officer, case.id, SHARED_ACTION)
    cases.add_entry(db_session, officer, case.id, MINISTRY_NOTE, internal=True)
    body_a = _register(db_session, staff, CITY_A)
    staff_b = actor_for(make_user(Role.BODY_STAFF, CITY_B))
    body_b = _register(db_session, staff_b, CITY_B)
    est = subsidy.create_estimate(db_session, staff, body_a, subsidy.EstimateInput(NHI, FY, "北斗システム", None, _lines()))
    subsidy.create_estimate(db_session, staff_b, body_b, subsidy.EstimateInput(NHI, FY, PEER_VENDOR, None,
                                                                                 _lines(2_400_000)))
    subsidy.add_estimate_note(db_session, finance, est, FINANCE_NOTE, 1)
    app = subsidy.create_application(db_session, staff, body_a, FY)
    db_session.commit()
    return {"users": users, "case": case.id, "estimate": est.id, "application": app.id}


def _client(app, user) -> Any:
    client = app.test_client()
    log_in(client, app, user.login_id)
    return client


def _texts(response) -> str:
    """The answer as text; an XLSX workbook as the values of all its cells."""
    if response.data[:2] == b"PK":
        book = openpyxl.load_workbook(io.BytesIO(response.data), read_only=True)
        return "\n".join(str(v) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for v in row
                         if v is not None)
    return response.get_data(as_text=True)


def _channels(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every place the record could surface: (method-less) URL → kind of answer expected."""
    case, est, app = record["case"], record["estimate"], record["application"]
    return {
        "home": "/", "case": f"/delays/cases/{case}", "cases": "/delays/cases?show=all",
        "delay_page": f"/delays/bodies/{CITY_A}?as_of=2015-10-15",
        "dashboard": f"/reports/prefectures/{CITY_A[:2]}?as_of=2015-10-15",
        "followup_csv": f"/reports/export/followup.csv?scope={CITY_A[:2]}&as_of=2015-10-15",
        "followup_xlsx": f"/reports/export/followup.xlsx?scope={CITY_A[:2]}&as_of=2015-10-15",
        "estimate": f"/subsidy/estimates/{est}", "estimate_edit": f"/subsidy/estimates/{est}/edit",
        "subsidy_body": f"/subsidy/bodies/{CITY_A}?fy={FY}", "subsidy_index": f"/subsidy/?fy={FY}",
        "application": f"/subsidy/applications/{app}",
        "compare": f"/subsidy/bodies/{CITY_A}/compare?system={NHI.value}&fy={FY}",
        "subsidy_report": f"/subsidy/reports?fy={FY}", "subsidy_report_xlsx": f"/subsidy/reports.xlsx?fy={FY}",
        "plan_csv": f"/plans/{CITY_A}/export?format=csv", "plan_xlsx": f"/plans/{CITY_A}/export?format=xlsx",
        # Searched by other words of the notes: the page repeats the query, the markers would come from hits.
        "search_note": "/search/?q=局長まで報告", "search_finance": "/search/?q=単価が過大",
        "audit": "/audit/", "audit_csv": "/audit/export.csv",
        "openapi": "/api/v1/openapi.json",
    }


def _api_channels() -> list[str]:
    return ["/api/v1/delays?as_of=2015-10-15", "/api/v1/search?q=局長まで報告", "/api/v1/search?q=単価が過大",
            f"/api/v1/bodies/{CITY_A}/plans"]


@pytest.mark.parametrize("role", ["muni", "muni_adm", "pref"])
def test_a_body_and_its_prefecture_never_see_internal_notes_or_peer_estimates(app, db_session, record, role):
    user = record["users"][role]
    client = _client(app, user)
    seen_ok = set()
    for name, url in _channels(record).items():
        response = client.get(url)
        assert response.status_code < 500, (name, response.status_code)
        if response.status_code == 200:
            seen_ok.add(name)
        text = _texts(response)
        for marker in MARKERS:
            assert marker not in text, (role, name, marker)
    # The screens of the record itself are reachable, so the absence above means something.
    assert {"case", "estimate", "application", "plan_csv", "plan_xlsx"} <= seen_ok, seen_ok
    case_html = client.get(f"/delays/cases/{record['case']}").get_data(as_text=True)
    assert "SHAREDACT2E4" in case_html and "府省内メモにする" not in case_html
    estimate_html = client.get(f"/subsidy/estimates/{record['estimate']}").get_data(as_text=True)
    # The flags and the anonymous spread of peers stay; who the peers are and the review notes do not.
    assert "基本設計" in estimate_html and "plotly-cost" in estimate_html and "審査の所見" not in estimate_html
    if role == "muni_adm":
        assert {"audit", "audit_csv"} <= seen_ok
        # The steps show on the body's audit trail, their text does not.
        audit_html = client.get("/audit/").get_data(as_text=True)
        assert "subsidy.estimate_note" in audit_html and "case.note_added" in audit_html
        assert client.get("/audit/export.csv").get_data(as_text=True).count("内部情報のため表示しません") == 2
    if role == "pref":
        assert {"dashboard", "followup_csv", "followup_xlsx"} <= seen_ok

    _token, secret = create_api_token(db_session, actor_for(user), "ac06")
    db_session.commit()
    for url in _api_channels():
        response = client.get(url, headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code < 500, (url, response.status_code)
        for marker in MARKERS:
            assert marker not in response.get_data(as_text=True), (role, url, marker)


def test_the_ministry_finance_and_system_admin_do_see_them(app, record):
    """The other side of the same pages: the filtering removes the markers only where it must."""
    users = record["users"]
    officer = _client(app, users["min"])
    html = officer.get(f"/delays/cases/{record['case']}").get_data(as_text=True)
    assert "MINNOTE7F3A" in html and "SHAREDACT2E4" in html and "府省内メモにする" in html

    finance = _client(app, users["fin"])
    html = finance.get(f"/subsidy/estimates/{record['estimate']}").get_data(as_text=True)
    assert "FINNOTE9B2C" in html and PEER_VENDOR in html and "審査の所見" in html

    admin = _client(app, users["sys"])
    assert all(m in admin.get("/audit/?body=" + CITY_A).get_data(as_text=True) for m in ("MINNOTE7F3A", "FINNOTE9B2C"))
    exported = admin.get(f"/audit/export.csv?body={CITY_A}").get_data(as_text=True)
    assert "MINNOTE7F3A" in exported and "FINNOTE9B2C" in exported


def _snapshot(db_session, record) -> Any:
    db_session.expire_all()
    est = db_session.get(Estimate, record["estimate"])
    app_ = db_session.get(Application, record["application"])
    case = db_session.get(FollowupCase, record["case"])
    return {
        "estimate": (est.body_id, est.vendor, est.system, est.fiscal_year, est.is_demo, est.created_by_id,
                     est.version, [(ln.work_item, ln.amount) for ln in est.lines]),
        "notes": db_session.scalars(sa.select(EstimateNote.text).order_by(EstimateNote.id)).all(),
        "application": (app_.body_id, app_.state, app_.kind, app_.round, app_.approved_by_id, app_.granted_general,
                        app_.version, [(ln.system, ln.cost, ln.other_income) for ln in app_.lines]),
        "case": (case.body_id, case.status, case.cause, case.owner_id, case.next_contact_date, case.version),
        "entries": db_session.execute(sa.select(CaseEntry.kind, CaseEntry.text).order_by(CaseEntry.id)).all(),
    }


def test_extra_fields_in_estimate_application_and_case_posts_change_only_the_allowlist(app, db_session, record):
    users = record["users"]
    b_id = db_session.scalar(sa.select(Body.id).where(Body.code == CITY_B))
    extras = {"status": "approved", "state": "approved", "reviewed_by": str(users["fin"].id),
              "approved_by_id": str(users["fin"].id), "body_id": str(b_id), "body": CITY_B, "granted_general": "999999",
              "vendor": "改ざん商事", "is_demo": "1", "created_by_id": str(users["fin"].id), "kind": "note",
              "owner_id": str(users["min"].id), "round": "9"}
    client = _client(app, users["muni"])
    est_id, app_id, case_id = record["estimate"], record["application"], record["case"]
    before = _snapshot(db_session, record)

    # A tampered version is refused and changes nothing.
    edit = {"rows": "1", "stated_total": "", "l-1-phase": "設計", "l-1-item": "詳細設計", "l-1-worker": "SE",
            "l-1-price": "1000000", "l-1-unit": "人月", "l-1-effort": "2", "l-1-amount": "2000000"}
    stale = client.post_form(f"/subsidy/estimates/{est_id}/edit", {**edit, **extras, "version": "999"})
    assert stale.status_code in (409, 422) and _snapshot(db_session, record) == before

    # The estimate edit: only the lines (and the version) move.
    ok = client.post_form(f"/subsidy/estimates/{est_id}/edit", {**edit, **extras, "version": str(before["estimate"][6])})
    assert ok.status_code == 302, ok.get_data(as_text=True)[:300]
    after = _snapshot(db_session, record)
    assert after["estimate"][:6] == before["estimate"][:6]
    assert after["estimate"][6] == before["estimate"][6] + 1 and after["estimate"][7] == [("詳細設計", 2_000_000)]
    assert after["notes"] == before["notes"]

    # The application's costs: state, approver, grant, kind, round and body stay.
    ok = client.post_form(f"/subsidy/applications/{app_id}/lines", {
        f"cost-{NHI.value}": "2000000", f"income-{NHI.value}": "0", **extras, "version": str(before["application"][6])})
    assert ok.status_code == 302, ok.get_data(as_text=True)[:300]
    after = _snapshot(db_session, record)
    assert after["application"][:6] == before["application"][:6] == (
        before["application"][0], ApplicationState.DRAFT, before["application"][2], 1, None, None)
    assert after["application"][7] == [(NHI.value, 2_000_000, 0)]

    # The case: a body cannot write an internal note nor change the case; an answer adds one ANSWER entry.
    assert client.post_form(f"/delays/cases/{case_id}/entries", {"text": "内部扱いで", "internal": "y",
                                                                 **extras}).status_code == 403
    assert client.post_form(f"/delays/cases/{case_id}/update", {"status": "resolved", "cause": "budget", "owner_id": "0",
                                                                "version": str(before["case"][5])}).status_code == 403
    assert _snapshot(db_session, record)["entries"] == before["entries"]
    ok = client.post_form(f"/delays/cases/{case_id}/entries", {"text": "体制を増強しました。", **extras,
                                                               "version": "999", "cause": "budget"})
    assert ok.status_code == 302
    after = _snapshot(db_session, record)
    assert after["entries"] == before["entries"] + [(EntryKind.ANSWER, "体制を増強しました。")]
    assert after["case"][:5] == before["case"][:5] and after["case"][1] is CaseStatus.OPEN

    # The prefecture: no internal note either; its comment is a COMMENT.
    pref = _client(app, users["pref"])
    assert pref.post_form(f"/delays/cases/{case_id}/entries", {"text": "県内部", "internal": "y"}).status_code == 403
    assert pref.post_form(f"/delays/cases/{case_id}/entries", {"text": "県も支援します。", **extras}).status_code == 302
    assert _snapshot(db_session, record)["entries"][-1] == (EntryKind.COMMENT, "県も支援します。")
