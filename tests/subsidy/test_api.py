"""POST /api/v1/subsidy/calculate: the same JSON as ``pmo subsidy grant``, problem details on errors."""

from __future__ import annotations

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for, create_api_token
from tests.conftest import CITY_A, CITY_B


def _token(db_session, make_user, role=Role.BODY_STAFF, body=CITY_A, ministry=None):
    user = make_user(role, body, ministry)
    _, secret = create_api_token(db_session, actor_for(user), "test")
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_calculate_returns_the_grant_per_category(client, db_session, make_user):
    headers = _token(db_session, make_user)
    response = client.post("/api/v1/subsidy/calculate", headers=headers, json={
        "body": CITY_A, "fiscal_year": 2014, "costs": {"国民健康保険": 1_500_000, "国民年金": 900_000}})
    assert response.status_code == 200, response.get_data(as_text=True)
    general = response.json["categories"]["一般分"]
    assert general["eligible"] == 1_500_000 and general["grant"] == 1_000_000 and general["local_share"] == 500_000
    assert response.json["categories"]["国民年金・特別児童扶養手当分"]["grant"] == 900_000


def test_calculate_refuses_bad_money_with_problem_details(client, db_session, make_user):
    headers = _token(db_session, make_user)
    response = client.post("/api/v1/subsidy/calculate", headers=headers, json={
        "body": CITY_A, "fiscal_year": 2014, "costs": {"国民健康保険": -1, "介護保険": 1.5, "未知": 1}})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    fields = {e["field"] for e in response.json["errors"]}
    assert {"costs.国民健康保険", "costs.介護保険", "costs.未知"} <= fields


def test_calculate_for_another_body_is_not_found(client, db_session, make_user):
    headers = _token(db_session, make_user)
    response = client.post("/api/v1/subsidy/calculate", headers=headers, json={
        "body": CITY_B, "fiscal_year": 2014, "costs": {"国民健康保険": 1}})
    assert response.status_code == 404


def test_calculate_needs_a_token(client):
    assert client.post("/api/v1/subsidy/calculate", json={}).status_code == 401


def test_calculate_is_documented(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/subsidy/calculate"]["post"]
    assert "requestBody" in operation and "422" in operation["responses"]
