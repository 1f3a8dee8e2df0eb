"""INP-01 safe redirects, INP-03 junk in filters and sort, INP-04 oversized requests."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from pmo.accounts.models import ApiToken, LoginAttempt, Role
from tests.conftest import CITY_A, PREF_X, TEST_PASSWORD

BAD_NEXT = [
    "//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "http:///evil.com", "https://evil.com",
    "javascript:alert(1)", "/\t/evil.com/", "\x08//evil.com", "%2F%2Fevil.com", "/%2F/evil.com",
    "https://localhost.evil.com/", " //evil.com", "/\r\nSet-Cookie: x=1",
]


def assert_home(location):
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost") and parts.scheme in ("", "https"), location
    assert parts.path == "/", location


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_a_bad_next_falls_back_to_home_on_this_host(client, make_user, bad):
    user = make_user(Role.BODY_STAFF, CITY_A)
    page = client.get("/login", query_string={"next": bad}).get_data(as_text=True)
    kept = re.search(r'name="next"[^>]*value="([^"]*)"', page) or re.search(r'value="([^"]*)"[^>]*name="next"', page)
    assert kept and kept.group(1) == "/"
    # a forged form field is checked again on POST
    response = client.post_form("/login", {"login_id": user.login_id, "password": TEST_PASSWORD, "next": bad},
                                token_from="/login")
    assert response.status_code == 302
    assert_home(response.headers["Location"])
    # and so is a logged-in visit to /login?next=
    assert_home(client.get("/login", query_string={"next": bad}).headers["Location"])


def test_a_good_next_is_honoured(client, make_user):
    user = make_user(Role.BODY_STAFF, CITY_A)
    target = f"/bodies/{CITY_A}?tab=2"
    response = client.get(target)
    assert response.status_code == 302
    login_url = response.headers["Location"]
    page = client.get(login_url).get_data(as_text=True)
    assert 'value="/bodies/012033?tab=2"' in page
    response = client.post_form("/login", {"login_id": user.login_id, "password": TEST_PASSWORD, "next": target},
                                token_from="/login")
    assert response.headers["Location"] == target


# --- INP-03 --------------------------------------------------------------------------------------

JUNK = ["' OR 1=1 --", "%", "_", "\"", "*", "AND NOT", "field:x", "x" * 10_000, "１２３", "1,234", "-5",
        "1e309", "NaN", "inf", "2024-02-30", "令和7年13月", "\x00", "０１"]
PARAMS = ["q", "prefecture", "kind", "population_min", "population_max", "sort", "page"]


def listed_codes(response):
    return re.findall(r'href="/bodies/(\d{6})"', response.get_data(as_text=True))


def listed_total(response):
    return int(re.search(r"<caption>([\d,]+)団体</caption>", response.get_data(as_text=True)).group(1).replace(",", ""))


def test_junk_in_filters_and_sort_gives_no_error_and_no_extra_rows(client, auth):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    baseline = listed_total(client.get("/bodies/"))
    assert 150 < baseline < 200  # 北海道: 179 municipalities, the prefecture and its union
    for param in PARAMS:
        for value in JUNK + ["password_hash", "-password_hash", "id desc", "code;drop table users"]:
            response = client.get("/bodies/", query_string={param: value})
            assert response.status_code in (200, 400, 422), (param, value)
            if response.status_code == 200:
                assert listed_total(response) <= baseline, (param, value)
                assert all(code.startswith("01") for code in listed_codes(response)), (param, value)


@pytest.mark.parametrize("text", ["' OR 1=1 --", "%", "_", "%%", "\\", "小樽_", "%市"])
def test_search_text_is_literal_not_a_pattern(client, auth, text):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    assert listed_total(client.get("/bodies/", query_string={"q": text})) == 0


def test_full_width_digits_filter_like_ascii(client, auth):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    ascii_ = listed_total(client.get("/bodies/", query_string={"population_min": "100000"}))
    wide = listed_total(client.get("/bodies/", query_string={"population_min": "１００，０００"}))
    assert ascii_ == wide and 0 < ascii_ < 20


def test_sort_is_allowlisted(client, auth):
    auth.login(role=Role.PREFECTURE_STAFF, body=PREF_X)
    by_code = listed_codes(client.get("/bodies/"))
    assert listed_codes(client.get("/bodies/?sort=password_hash")) == by_code
    by_population = listed_codes(client.get("/bodies/?sort=-population"))
    assert by_population.index("011002") < 3  # 札幌市, after 北海道 and its union
    assert by_population != by_code


# --- INP-04 --------------------------------------------------------------------------------------


@pytest.fixture
def logged_in(client, auth):
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    return client


def token_count(db_session):
    return db_session.scalar(sa.select(sa.func.count()).select_from(ApiToken))


def assert_413(response):
    assert response.status_code == 413
    assert "送信されたデータが大きすぎます" in response.get_data(as_text=True)


def test_limits_are_set(app):
    assert 0 < app.config["MAX_CONTENT_LENGTH"] <= 100 * 1024 * 1024
    assert 0 < app.config["MAX_FORM_MEMORY_SIZE"] < 1024 * 1024
    assert 0 < app.config["MAX_FORM_PARTS"] < 5000


def test_a_body_over_the_limit_is_refused_before_the_handler(app, logged_in, db_session):
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024  # the real limit is 50 MB; the check is the same
    token = logged_in.csrf_token("/account")
    import io

    response = logged_in.post("/account/tokens", data={
        "csrf_token": token, "name": "大きすぎる", "file": (io.BytesIO(b"x" * (3 * 1024 * 1024)), "big.bin")},
        content_type="multipart/form-data")
    assert_413(response)
    assert token_count(db_session) == 0


def test_five_thousand_multipart_parts_are_refused(logged_in, db_session):
    data = {"csrf_token": logged_in.csrf_token("/account"), "name": "多すぎる"}
    data.update({f"f{n}": "x" for n in range(5000)})
    assert_413(logged_in.post("/account/tokens", data=data, content_type="multipart/form-data"))
    assert token_count(db_session) == 0


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_one_megabyte_text_field_is_refused(logged_in, db_session, content_type):
    data = {"csrf_token": logged_in.csrf_token("/account"), "name": "あ" * (1024 * 1024 // 3 + 1)}
    assert_413(logged_in.post("/account/tokens", data=data, content_type=content_type))
    assert token_count(db_session) == 0


def test_an_oversized_login_is_refused_before_any_attempt_is_counted(client, db_session):
    response = client.post("/login", data={"login_id": "x", "password": "p" * (1024 * 1024 + 1)})
    assert_413(response)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(LoginAttempt)) == 0
