"""GET/PUT /api/v1/bodies/{code}/plans with per-row versions."""

from __future__ import annotations

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for, create_api_token
from tests.conftest import CITY_A, CITY_B


def bearer(db_session, user):
    _, secret = create_api_token(db_session, actor_for(user), "test")
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_get_and_put_with_versions(client, db_session, make_user):
    headers = bearer(db_session, make_user(Role.BODY_STAFF, CITY_A))
    got = client.get(f"/api/v1/bodies/{CITY_A}/plans", headers=headers).get_json()
    f2 = next(p for p in got["plans"] if p["subtask"] == "F-2")
    assert f2["version"] == 0 and f2["status"] == "not_started" and f2["milestone"] == "2016-11-01"
    put = client.put(f"/api/v1/bodies/{CITY_A}/plans", headers=headers, json={"plans": [
        {"subtask": "F-2", "version": 0, "planned_start": "H27.10.1", "planned_end": "2016-01"}]})
    assert put.status_code == 200
    f2 = next(p for p in put.get_json()["plans"] if p["subtask"] == "F-2")
    assert (f2["planned_start"], f2["planned_end"], f2["version"]) == ("2015-10-01", "2016-01", 1)
    stale = client.put(f"/api/v1/bodies/{CITY_A}/plans", headers=headers, json={"plans": [
        {"subtask": "F-2", "version": 0, "planned_start": "2015-10-01", "planned_end": "2016-02-29"}]})
    assert stale.status_code == 409
    conflict = stale.get_json()["conflicts"][0]
    assert conflict == {"subtask": "F-2", "version": 1, "fields": ["planned_end"],
                        "theirs": {"planned_end": "2016-01"}, "yours": {"planned_end": "2016-02-29"}}


def test_put_validation_and_scope(client, db_session, make_user):
    headers = bearer(db_session, make_user(Role.BODY_STAFF, CITY_A))
    bad = client.put(f"/api/v1/bodies/{CITY_A}/plans", headers=headers, json={"plans": [
        {"subtask": "F-2", "version": 0, "planned_start": "2015-12-01", "planned_end": "2015-11-01"}]})
    assert bad.status_code == 422
    assert bad.get_json()["errors"] == [{"field": "F-2.planned_end", "message": "計画終了日が計画開始日より前になっています。"}]
    assert client.get(f"/api/v1/bodies/{CITY_B}/plans", headers=headers).status_code == 404
    assert client.put(f"/api/v1/bodies/{CITY_A}/plans", headers=headers, json={"x": 1}).status_code == 400
    assert client.get(f"/api/v1/bodies/{CITY_A}/plans").status_code == 401
