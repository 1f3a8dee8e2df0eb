"""The plan screens end to end through the client: status codes, what the page shows, what is stored."""

from __future__ import annotations

import datetime as dt
import io
import re

from sqlalchemy import func, select

from pmo.accounts.models import Role
from pmo.core.tabular import write_csv
from pmo.orgs.models import Body
from pmo.plans import imports, service
from pmo.plans.models import ImportJob, ImportStatus, MonthlySnapshot, Plan
from tests.conftest import CITY_A, CITY_B, PREF_X
from tests.plans.conftest import row


def sheet_form(html: str) -> dict[str, str]:
    """Every input of the plan form as the browser would send it."""
    data = {}
    for m in re.finditer(r'<input [^>]*name="([^"]+)"[^>]*>', html):
        tag = m.group(0)
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                data[m.group(1)] = "1"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[m.group(1)] = value.group(1) if value else ""
    return data


def test_staff_see_and_save_their_plan(client, auth, db_session, body):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get("/plans/").headers["Location"].endswith(f"/plans/{CITY_A}")
    page = client.get(f"/plans/{CITY_A}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "小樽市の計画・実績" in html and "B-2" in html
    form = sheet_form(html)
    form["B-2__planned_start"], form["B-2__planned_end"] = "H26.10.1", "平成27年9月30日"
    response = client.post(f"/plans/{CITY_A}", data=form)
    assert response.status_code == 302
    plan = db_session.scalar(select(Plan).where(Plan.body_id == body(CITY_A).id))
    assert (plan.planned_start, plan.planned_end) == (dt.date(2014, 10, 1), dt.date(2015, 9, 30))
    assert "保存しました（1件のサブタスク: B-2）" in client.get(f"/plans/{CITY_A}").get_data(as_text=True)


def test_errors_are_shown_beside_the_field_with_the_typed_value_kept(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    form = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
    form["C-4__planned_start"], form["C-4__planned_end"] = "2015/10/20", "H27.10.1"
    form["C-5__actual_start"] = "平成27年13月1日"
    response = client.post(f"/plans/{CITY_A}", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'value="H27.10.1"' in html and 'value="平成27年13月1日"' in html
    assert 'id="C-4__planned_end-error">計画終了日が計画開始日より前になっています。' in html
    assert "存在しない日付" in html
    assert db_session.scalar(select(Plan)) is None


def test_second_session_gets_the_conflict_screen(client, auth, db_session, make_user, app):
    user = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    stale = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
    other = app.test_client()
    auth_other = type(auth)(other, make_user)
    auth_other.login(role=Role.BODY_STAFF, body=CITY_A)
    fresh = sheet_form(other.get(f"/plans/{CITY_A}").get_data(as_text=True))
    fresh["G-3__planned_end"] = "2015-11-30"
    assert other.post(f"/plans/{CITY_A}", data=fresh).status_code == 302
    stale["G-3__planned_end"] = "2015-12-25"
    response = client.post(f"/plans/{CITY_A}", data=stale)
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "他のユーザーが先に保存しました。何も保存していません。" in html
    assert '<td class="theirs">2015-11-30</td><td class="yours">2015-12-25</td>' in html
    plan = db_session.scalar(select(Plan))
    assert plan.planned_end == dt.date(2015, 11, 30)
    # saving again from the conflict screen overwrites deliberately
    again = sheet_form(html)
    assert client.post(f"/plans/{CITY_A}", data=again).status_code == 302
    db_session.refresh(plan)
    assert plan.planned_end == dt.date(2015, 12, 25) and user


def test_past_state_is_shown_read_only(client, auth, actor, db_session):
    from pmo.core import clock

    _, staff = actor(Role.BODY_STAFF, CITY_A)
    clock.freeze(dt.datetime(2015, 10, 1, 1, tzinfo=dt.UTC))
    service.save_sheet(db_session, staff, CITY_A, [row("J-2", None, planned_end="2015-09-30")])
    clock.freeze(dt.datetime(2015, 12, 1, 1, tzinfo=dt.UTC))
    service.save_sheet(db_session, staff, CITY_A, [row("J-2", None, planned_end="2015-12-18")])
    db_session.commit()
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    html = client.get(f"/plans/{CITY_A}?as_of=H27.10.31").get_data(as_text=True)
    assert "2015年10月31日（平成27年10月31日）時点の状態" in html and "2015年9月30日" in html
    assert "2015年12月18日" not in html and "保存する" not in html
    assert "存在しない日付" in client.get(f"/plans/{CITY_A}?as_of=2015-02-30").get_data(as_text=True)


def test_other_bodies_are_404_and_prefecture_reads_without_editing(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get(f"/plans/{CITY_B}").status_code == 404
    assert client.get("/plans/prefecture").status_code == 403
    auth.logout()
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    html = client.get("/plans/prefecture").get_data(as_text=True)
    assert "管下団体の進捗" in html and "小樽市" in html
    page = client.get(f"/plans/{CITY_A}").get_data(as_text=True)
    assert "閲覧のみです" in page and "保存する" not in page
    assert client.post_form(f"/plans/{CITY_A}", {"A-6__version": "0", "A-6__planned_start": "2015-04-01"},
                            token_from=f"/plans/{CITY_A}").status_code == 403
    response = client.post_form(f"/plans/{CITY_A}/comments", {"text": "議会日程を確認してください", "subtask": "j-2"},
                                token_from=f"/plans/{CITY_A}")
    assert response.status_code == 302
    assert "議会日程を確認してください" in client.get(f"/plans/{CITY_A}").get_data(as_text=True)


def test_download_and_upload_with_preview_then_commit(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    download = client.get(f"/plans/{CITY_A}/export")
    assert download.status_code == 200 and download.mimetype.endswith("sheet")
    assert client.get(f"/plans/{CITY_A}/export?format=cp932").data.decode("cp932").startswith("団体コード,団体名")
    data = write_csv(imports.HEADERS, [[CITY_A, "小樽市", "E-4", "2015-09-01", "2015-12-11", "", "", "", "", ""]])
    token = client.csrf_token("/plans/import")
    response = client.post("/plans/import", data={"csrf_token": token, "batch_id": "abc123",
                                                   "file": (io.BytesIO(data), "plans.csv")},
                           content_type="multipart/form-data")
    assert response.headers["Location"].endswith("/plans/import/abc123")
    preview = client.get("/plans/import/abc123").get_data(as_text=True)
    assert "まだ反映していません" in preview and db_session.scalar(select(Plan)) is None
    status = client.get("/plans/import/abc123/status.json").get_json()
    assert status["status"] == "previewed" and status["finished"]
    assert client.post_form("/plans/import/abc123/commit", token_from="/plans/import/abc123").status_code == 302
    assert "取込を確定しました" in client.get("/plans/import/abc123").get_data(as_text=True)
    assert db_session.scalar(select(Plan)).planned_end == dt.date(2015, 12, 11)


def test_rejected_upload_lists_errors_downloadable(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    data = write_csv(imports.HEADERS, [[CITY_A, "", "B-2", "2015-13-01", "", "", "", "", "", ""]])
    token = client.csrf_token("/plans/import")
    client.post("/plans/import", data={"csrf_token": token, "batch_id": "bad1", "file": (io.BytesIO(data), "p.csv")},
                content_type="multipart/form-data")
    html = client.get("/plans/import/bad1").get_data(as_text=True)
    assert "1件の誤りがあるため、ファイル全体を取り込みませんでした" in html and "計画開始日" in html
    errors = client.get("/plans/import/bad1/errors.csv").data.decode("utf-8-sig")
    assert errors.splitlines()[0] == "シート,行,列,値,エラー内容" and "2015-13-01" in errors


def test_national_page_and_monthly_close(client, auth, db_session):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get("/plans/national").status_code == 403
    auth.logout()
    auth.login(role=Role.MINISTRY_OFFICER, ministry="mic")
    assert "全国ワークブック" in client.get("/plans/national").get_data(as_text=True)
    response = client.post_form("/plans/national/close", {"month": "H27.11"}, token_from="/plans/national")
    assert response.status_code == 302
    assert db_session.scalar(select(MonthlySnapshot)).month == dt.date(2015, 11, 1)
    assert "2015年11月を締めました" in client.get("/plans/national").get_data(as_text=True)


def test_job_of_someone_else_is_not_found(client, auth, db_session, actor, tmp_path):
    _, other = actor(Role.BODY_STAFF, CITY_B)
    data = write_csv(imports.HEADERS, [[CITY_B, "", "A-6", "", "", "", "", "", "", ""]])
    job = imports.start_job(db_session, other, data, "x.csv", False)
    db_session.commit()
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get(f"/plans/import/{job.batch_id}").status_code == 404
    assert db_session.scalar(select(ImportJob)).status is ImportStatus.RUNNING


def test_national_export_reports_its_progress(client, auth, db_session):
    auth.login(role=Role.MINISTRY_OFFICER, ministry="mic")
    page = client.get("/plans/national").get_data(as_text=True)
    assert "data-export-progress" in page and "data-export" in page
    response = client.get("/plans/national/export?format=csv&job=abcdef0123456789")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    lines = response.get_data().decode("utf-8-sig").splitlines()
    job = db_session.scalar(select(ImportJob).where(ImportJob.batch_id == "abcdef0123456789"))
    assert job.kind == imports.EXPORT_KIND and job.status is ImportStatus.DONE
    bodies = db_session.scalar(select(func.count()).select_from(Body))
    assert job.total_rows == job.processed_rows == bodies and len(lines) > 52_000  # bodies done / all bodies
    status = client.get("/plans/import/abcdef0123456789/status.json").get_json()
    assert status == {**status, "phase": "export", "finished": True, "processed": bodies, "total": bodies}
    assert client.get("/plans/import/abcdef0123456789").status_code == 404  # no import page for an export
    assert "abcdef0123456789" not in client.get("/plans/national").get_data(as_text=True)  # not an import
    again = client.get("/plans/national/export?format=csv&job=abcdef0123456789")  # a reloaded link still downloads
    assert again.status_code == 200 and again.get_data() == response.get_data()
    assert db_session.scalar(select(func.count()).select_from(ImportJob)) == 1
