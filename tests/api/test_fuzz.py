"""Fuzzing, short form (issue 7 item 6): schemathesis generates requests for every operation of
/api/v1/openapi.json, sent with real Bearer tokens. No answer may be a 500, and every answer must
be as documented: a listed status code, the documented content type, a body matching its schema.

The long form, with many more cases per operation, is bench/api_fuzz.py.
"""

from __future__ import annotations

from pmo.accounts import service as accounts
from pmo.accounts.models import Role
from pmo.api.openapi import build_spec
from tests.api.fuzzing import fuzz_api
from tests.conftest import CITY_A

CASES_PER_OPERATION = 8
ROLES = [(Role.BODY_STAFF, {"body_code": CITY_A}), (Role.MINISTRY_OFFICER, {"ministry": "mic"})]


def test_every_operation_answers_as_documented(app, make_user, db_session):
    bearers = []
    for role, where in ROLES:  # a body's staff and a ministry officer: each case is sent with both
        user = make_user(role, **where)
        _token, secret = accounts.create_api_token(db_session, accounts.actor_for(user), "fuzz")
        bearers.append({"Authorization": f"Bearer {secret}"})
    db_session.commit()
    sent = fuzz_api(app, bearers, CASES_PER_OPERATION)
    with app.app_context():
        documented = {f"{method.upper()} {path}" for path, ops in build_spec(app)["paths"].items() for method in ops}
    # every documented operation was exercised (schemathesis leaves out the document itself)
    assert set(sent) == documented - {"GET /api/v1/openapi.json"} and len(sent) >= 10, sent
    assert all(count >= 2 for count in sent.values()), sent


def test_a_search_that_finds_nothing_after_catch_up_indexing_is_not_a_500(tmp_path):
    """Found by the long form (bench/api_fuzz.py): on a file-backed SQLite database, a search that
    found nothing right after the catch-up indexing had written failed with "database is locked"
    (the request's read snapshot, taken while loading the token's owner, was stale: SQLITE_BUSY_SNAPSHOT)."""
    import sqlalchemy as sa

    from pmo import create_app
    from pmo.accounts.models import User
    from pmo.cli import upgrade_database
    from pmo.orgs.models import Body, BodyKind
    from pmo.search import service as search

    url = f"sqlite:///{tmp_path / 'file.sqlite3'}"
    upgrade_database(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "s" * 64})
    with app.app_context(), app.extensions["pmo_db"].session() as session:
        city = Body(code=CITY_A, name="小樽市", kind=BodyKind.CITY, prefecture_code="01")
        session.add(city)
        session.flush()
        user = User(login_id="otaru-searcher", display_name="検索 太郎", email="s@example.jp", role=Role.BODY_STAFF,
                    body_id=city.id, password_hash=accounts.hash_password("x" * 20), must_change_password=False)
        session.add(user)
        session.flush()
        _token, secret = accounts.create_api_token(session, accounts.actor_for(user), "fuzz")
        search.enqueue(session, "document", 999_999)  # queued work: the catch-up writes before the search
        session.commit()
    client = app.test_client()
    response = client.get("/api/v1/search?q=見つからない語", headers={"Authorization": f"Bearer {secret}"},
                          base_url="https://localhost")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.get_json()["total"] == 0
    with app.extensions["pmo_db"].session() as session:
        assert session.scalar(sa.text("SELECT count FROM search_misses WHERE query = '見つからない語'")) == 1
    app.extensions["pmo_db"].engine.dispose()
