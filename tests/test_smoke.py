"""The portal starts, seeds every real body, and a user logs in and out."""

from sqlalchemy import func, select

from pmo.accounts.models import Role
from pmo.orgs.models import Body, BodyKind


def test_every_body_is_seeded(db_session):
    kinds = dict(db_session.execute(select(Body.kind, func.count()).group_by(Body.kind)).all())
    assert kinds[BodyKind.PREFECTURE] == 47
    assert sum(v for k, v in kinds.items() if k.is_municipality) == 1741
    assert kinds[BodyKind.UNION] == 47


def test_login_and_logout(client, auth):
    auth.login(role=Role.BODY_STAFF)
    page = client.get("/")
    assert "ようこそ" in page.get_data(as_text=True)
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/").headers["Location"].endswith("/login")
