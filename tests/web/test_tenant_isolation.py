"""AC-03 and AC-06 over HTTP: staff of 市A reaching for 市B's records through the URL, the query string,
a JSON body, a hidden form field and the next id get 404 with an ``authz.denied`` entry and no change;
extra fields posted with an edit (``body_id``, ``version``, ``status``…) move nothing else."""

from __future__ import annotations

import hashlib
import io

import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for, create_api_token
from pmo.audit.models import AuditEntry
from pmo.plans import service as plans
from pmo.plans.models import Plan, PlanRevision
from pmo.subsidy.models import Estimate
from tests.conftest import CITY_A, CITY_B
from tests.plans.conftest import row
from tests.plans.test_views import sheet_form

SECRET_NOTE = "函館の内部メモ"


def _state(db_session) -> str:
    db_session.expire_all()
    rows = db_session.execute(sa.select(Plan.id, Plan.body_id, Plan.subtask_id, Plan.version, Plan.planned_end,
                                        Plan.comment).order_by(Plan.id)).all()
    revisions = db_session.scalar(sa.select(sa.func.count()).select_from(PlanRevision))
    estimates = db_session.scalar(sa.select(sa.func.count()).select_from(Estimate))
    return hashlib.sha256(repr((rows, revisions, estimates)).encode()).hexdigest()


def _denials(db_session) -> int:
    db_session.expire_all()
    return db_session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "authz.denied", AuditEntry.target_body_code == CITY_B))


def test_another_bodys_records_are_404_by_every_route_in(client, auth, make_user, db_session):
    """AC-03: URL, query string, JSON body (API), export and estimates of 市B: 404, no 市B data in the
    answer, the database unchanged, and the denials audited."""
    other = actor_for(make_user(Role.BODY_STAFF, CITY_B))
    plans.save_sheet(db_session, other, CITY_B, [row("C-4", 0, planned_end="2015-11-30", comment=SECRET_NOTE)])
    db_session.commit()
    staff = auth.login(role=Role.BODY_STAFF, body=CITY_A)
    before, denied = _state(db_session), _denials(db_session)
    _token, secret = create_api_token(db_session, actor_for(staff), "ac03")
    db_session.commit()
    bearer = {"Authorization": f"Bearer {secret}"}
    answers = {
        "url": client.get(f"/plans/{CITY_B}"),
        "history": client.get(f"/plans/{CITY_B}/history"),
        "export": client.get(f"/plans/{CITY_B}/export"),
        "query": client.get("/plans/open", query_string={"code": CITY_B}, follow_redirects=True),
        "post": client.post_form(f"/plans/{CITY_B}", {"C-4__planned_end": "2016-01-01", "C-4__version": "1"},
                                 token_from=f"/plans/{CITY_A}"),
        "api_get": client.get(f"/api/v1/bodies/{CITY_B}/plans", headers=bearer),
        "api_put": client.put(f"/api/v1/bodies/{CITY_B}/plans", headers=bearer,
                              json={"plans": [{"subtask": "C-4", "version": 1, "planned_end": "2016-01-01"}]}),
        "subsidy": client.get(f"/subsidy/bodies/{CITY_B}?fy=2014"),
        "estimate_upload": client.post_form(f"/subsidy/bodies/{CITY_B}/estimates/new", {
            "fy": "2014", "system": "国民健康保険", "vendor": "A社",
            "file": (io.BytesIO("工程,作業項目,作業者区分,単価,単位,工数,金額\n".encode()), "a.csv")},
            token_from=f"/subsidy/bodies/{CITY_A}/estimates/new", content_type="multipart/form-data"),
    }
    for name, response in answers.items():
        assert response.status_code == 404, (name, response.status_code)
        assert SECRET_NOTE not in response.get_data(as_text=True), name
        assert "函館市" not in response.get_data(as_text=True), name
    assert _state(db_session) == before
    assert _denials(db_session) > denied


def test_extra_fields_in_an_edit_change_only_what_the_form_allows(client, auth, make_user, db_session):
    """AC-06: an edit of 市A's sheet carrying body_id=市B, body=市B, status, reviewed_by and a forged
    updated_by changes 市A's row only; nothing of 市B is created."""
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    form = sheet_form(client.get(f"/plans/{CITY_A}").get_data(as_text=True))
    form["C-4__planned_end"] = "2015-11-30"
    b_id = db_session.scalar(sa.text("SELECT id FROM bodies WHERE code = :c"), {"c": CITY_B})
    form.update({"body_id": str(b_id), "body": CITY_B, "code": CITY_B, "status": "approved", "reviewed_by": "1",
                 "C-4__body_id": str(b_id), "C-4__updated_by_id": "1", "C-4__status": "done", "version": "999"})
    assert client.post(f"/plans/{CITY_A}", data=form).status_code == 302
    db_session.expire_all()
    saved = db_session.execute(sa.select(Plan.body_id, Plan.planned_end, Plan.progress, Plan.version)).all()
    a_id = db_session.scalar(sa.text("SELECT id FROM bodies WHERE code = :c"), {"c": CITY_A})
    assert len(saved) == 1 and saved[0][0] == a_id and str(saved[0][1]) == "2015-11-30" and saved[0][3] == 1
    assert saved[0][2] in (None, 0)
