"""The body list and page (filters, paging, sort, scope), idempotent seeding, and the users CLI."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role, User
from pmo.audit.models import AuditEntry
from pmo.orgs.models import Body, BodyKind, Ministry, UnionMember
from pmo.paths import data_dir
from pmo.seeding import run_seed
from tests.conftest import CITY_A, CITY_B, CITY_C, PREF_X, PREF_Y


def total(response):
    assert response.status_code == 200
    return int(re.search(r"<caption>([\d,]+)団体</caption>", response.get_data(as_text=True)).group(1).replace(",", ""))


def codes(response):
    return re.findall(r'href="/bodies/([0-9U]\d{5})"', response.get_data(as_text=True).split("<tbody>")[1])


def test_a_ministry_officer_sees_every_body(client, auth, db_session):
    auth.login(role=Role.MINISTRY_OFFICER)
    assert total(client.get("/bodies/")) == 1788 + 47
    assert total(client.get("/bodies/?kind=prefecture")) == 47
    assert total(client.get("/bodies/?kind=union")) == 47
    assert total(client.get("/bodies/?prefecture=02")) == db_session.scalar(
        sa.select(sa.func.count()).select_from(Body).where(Body.prefecture_code == "02"))


def test_filters_by_population_range_and_kind(client, auth, db_session):
    auth.login(role=Role.MINISTRY_OFFICER)
    expected = db_session.scalar(sa.select(sa.func.count()).select_from(Body).where(
        Body.population >= 100_000, Body.population < 300_000, Body.kind == BodyKind.CITY))
    assert total(client.get("/bodies/?population_min=100000&population_max=300000&kind=city")) == expected > 0
    assert total(client.get("/bodies/?q=小樽")) == 1


def test_paging_walks_the_whole_list_once(app, client, auth):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_Y)
    count = total(client.get("/bodies/"))
    per_page = app.config["ITEMS_PER_PAGE"]
    seen = []
    for page in range(1, count // per_page + 2):
        seen += codes(client.get(f"/bodies/?page={page}"))
    assert len(seen) == len(set(seen)) == count
    assert codes(client.get("/bodies/?page=9999")) == []


def test_sort_orders(client, auth, db_session):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_Y)
    population = dict(db_session.execute(sa.select(Body.code, Body.population)).all())
    small_first = codes(client.get("/bodies/?sort=population"))
    pops = [population[c] for c in small_first]
    assert pops == sorted(pops)
    assert codes(client.get("/bodies/?sort=code")) == sorted(codes(client.get("/bodies/?sort=code")))


@pytest.mark.parametrize("role, body, visible, hidden", [
    (Role.BODY_STAFF, CITY_A, [CITY_A], [CITY_B, PREF_X, CITY_C]),
    (Role.PREFECTURE_STAFF, PREF_X, [CITY_A, CITY_B, PREF_X], [CITY_C, PREF_Y]),
    (Role.FINANCE_OFFICER, PREF_X, [CITY_A, CITY_B, PREF_X], [CITY_C]),
])
def test_scope_of_list_and_page(client, auth, db_session, role, body, visible, hidden):
    user = auth.login(role=role, body=body)
    listed = set(codes(client.get("/bodies/?sort=code&page=1"))) | {
        c for p in range(2, 6) for c in codes(client.get(f"/bodies/?page={p}"))}
    for code in visible:
        assert client.get(f"/bodies/{code}").status_code == 200, code
        assert code in listed
    for code in hidden:
        response = client.get(f"/bodies/{code}")
        assert response.status_code == 404, code
        assert code not in listed
    assert client.get("/bodies/999999").status_code == 404
    # the refusals are audited
    denied = db_session.scalars(sa.select(AuditEntry.target_body_code).where(
        AuditEntry.action == "authz.denied", AuditEntry.actor_user_id == user.id)).all()
    assert set(denied) == set(hidden)


def test_seeding_twice_changes_nothing(db_session):
    tables = (Body, UnionMember, Ministry)

    def snapshot():
        return {t.__tablename__: sorted(tuple(r) for r in db_session.execute(sa.select(t.__table__)).all())
                for t in tables}

    before = snapshot()
    results = run_seed(db_session, data_dir("seed"))
    db_session.flush()
    assert snapshot() == before
    orgs = results["pmo.orgs.service:seed_all"]
    assert all(r.created == 0 and r.updated == 0 for r in orgs.values())


# --- pmo users -----------------------------------------------------------------------------------


def test_users_cli_create_disable_list(app, db_session):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--login", "otaru-cli", "--name", "小樽 次郎",
                                 "--email", "cli@otaru.example", "--role", "body_admin", "--body", CITY_A])
    assert result.exit_code == 0, result.output
    password = re.search(r"初期パスワード（初回ログイン時に変更）: (\S+)", result.output).group(1)
    user = db_session.scalar(sa.select(User).where(User.login_id == "otaru-cli"))
    assert user.must_change_password and user.password_hash.startswith("$argon2id$") and password not in user.password_hash
    assert user.body.code == CITY_A

    listing = runner.invoke(args=["users", "list"])
    assert listing.exit_code == 0 and re.search(r"otaru-cli\s+body_admin\s+有効", listing.output)

    again = runner.invoke(args=["users", "create", "--login", "soumu01", "--name", "共用", "--email",
                                "x@otaru.example", "--role", "body_staff", "--body", CITY_A])
    assert again.exit_code == 1 and "共用の名前" in again.output

    make_second = runner.invoke(args=["users", "create", "--login", "otaru-cli2", "--name", "小樽 三郎",
                                      "--email", "cli2@otaru.example", "--role", "body_admin", "--body", CITY_A])
    assert make_second.exit_code == 0
    result = runner.invoke(args=["users", "disable", "otaru-cli"])
    assert result.exit_code == 0, result.output
    db_session.refresh(user)
    assert not user.is_active
    assert re.search(r"otaru-cli\s+body_admin\s+無効", runner.invoke(args=["users", "list"]).output)
    entry = db_session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "account.disabled"))
    assert entry.channel == "cli"
    missing = runner.invoke(args=["users", "disable", "nobody-at-all"])
    assert missing.exit_code != 0 and "見つかりません" in missing.output
