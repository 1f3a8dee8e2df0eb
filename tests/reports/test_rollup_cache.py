"""The shared roll-up cache: computed once, reused, recomputed after any plan change; shared across workers
through Redis; a tampered entry is never unpickled."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for
from pmo.core import clock
from pmo.core.sharedcache import SharedCache
from pmo.plans import service as plans
from pmo.reports import service
from tests.conftest import CITY_A, CITY_B

D = dt.date


@pytest.fixture
def officer(make_user):  # type: ignore[no-untyped-def]
    return actor_for(make_user(Role.MINISTRY_OFFICER, None, "mic"))


@pytest.fixture(autouse=True)
def _thaw_clock():  # type: ignore[no-untyped-def]
    yield
    clock.freeze(None)


@pytest.fixture
def local_cache(monkeypatch):  # type: ignore[no-untyped-def]
    cache = SharedCache(secret=b"test-secret")
    monkeypatch.setattr(service, "ROLLUP_CACHE", cache)
    return cache


def _status(roll, code=CITY_A) -> str:
    return str(roll.bodies.set_index("body_code").loc[code, "status"])


def test_the_rollup_is_computed_once_and_recomputed_after_a_plan_change(db_session, officer, local_cache, make_user):
    as_of = D(2015, 10, 15)
    clock.freeze(dt.datetime(2015, 10, 15, 3, tzinfo=dt.timezone.utc))  # today: the plans as they stand
    first = service.rollup(db_session, officer, as_of)
    assert service.rollup(db_session, officer, as_of) is first
    assert local_cache.stats["computed"] == 1
    assert _status(first) == "critical"  # nothing planned: B-2's milestone (2015-10-05) has passed

    staff = actor_for(make_user(Role.BODY_STAFF, CITY_A))
    plans.save_sheet(db_session, staff, CITY_A, [
        plans.RowInput("B-2", {"planned_start": "2014-10-01", "planned_end": "2015-09-30", "actual_start": "2014-10-01",
                               "actual_end": "2015-09-30"}, version=None)])
    second = service.rollup(db_session, officer, as_of)
    assert second is not first and local_cache.stats["computed"] == 2
    before = first.bodies.set_index("body_code").loc[CITY_A]
    after = second.bodies.set_index("body_code").loc[CITY_A]
    assert after["done"] == before["done"] + 1
    # Another as-of date is another entry; the first one is still served.
    service.rollup(db_session, officer, D(2015, 11, 1))
    assert service.rollup(db_session, officer, as_of) is second


def test_the_dashboard_and_report_read_the_same_cached_rollup(db_session, officer, local_cache):
    as_of = D(2015, 10, 15)
    board = service.dashboard(db_session, officer, as_of)
    report = service.steering_report(db_session, officer, as_of)
    assert local_cache.stats["computed"] >= 1
    computed = local_cache.stats["computed"]
    service.dashboard(db_session, officer, as_of)
    assert local_cache.stats["computed"] == computed
    assert board.summary["bodies"] == report.summary["bodies"]
    assert list(report.sections["national"]["団体数"]) == list(board.tables["status"]["団体数"])


def test_a_bodys_own_signals_are_cached_per_body_and_follow_its_changes(db_session, make_user, monkeypatch):
    cache = SharedCache(secret=b"test-secret")
    monkeypatch.setattr(service, "BODY_CACHE", cache)
    as_of = D(2015, 10, 15)
    clock.freeze(dt.datetime(2015, 10, 15, 3, tzinfo=dt.timezone.utc))
    staff = actor_for(make_user(Role.BODY_STAFF, CITY_A))
    first = service.body_signals(db_session, staff, as_of, CITY_A)
    assert service.body_signals(db_session, staff, as_of, CITY_A) is first and cache.stats["computed"] == 1
    assert first.status == "critical" and "B-2" in set(first.signals["subtask"])

    plans.save_sheet(db_session, staff, CITY_A, [
        plans.RowInput("B-2", {"planned_start": "2014-10-01", "planned_end": "2015-09-30", "actual_start": "2014-10-01",
                               "actual_end": "2015-09-30"}, version=None)])
    second = service.body_signals(db_session, staff, as_of, CITY_A)
    assert cache.stats["computed"] == 2 and second.rate > first.rate
    assert "B-2" not in set(second.signals["subtask"])


def test_a_cached_body_is_still_refused_to_staff_of_another_body(db_session, make_user, monkeypatch):
    from pmo.core.errors import NotFound

    cache = SharedCache(secret=b"test-secret")
    monkeypatch.setattr(service, "BODY_CACHE", cache)
    as_of = D(2015, 10, 15)
    service.body_signals(db_session, actor_for(make_user(Role.BODY_STAFF, CITY_A)), as_of, CITY_A)
    other = actor_for(make_user(Role.BODY_STAFF, CITY_B, login_id="staff-b"))
    with pytest.raises(NotFound):
        service.body_signals(db_session, other, as_of, CITY_A)


def _redis_or_skip(db: int = 15):  # type: ignore[no-untyped-def]
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, db=db, socket_connect_timeout=1)
    try:
        client.ping()
    except Exception:  # noqa: BLE001
        pytest.skip("no Redis at 127.0.0.1:6379")
    return client


def test_two_workers_share_one_computation_through_redis():
    client = _redis_or_skip()
    prefix = f"pmo-test:{uuid.uuid4().hex}:"
    worker_a = SharedCache(secret=b"s", prefix=prefix, client=client)
    worker_b = SharedCache(secret=b"s", prefix=prefix, client=client)
    calls = []
    try:
        assert worker_a.get_or_compute("k", lambda: calls.append("a") or {"rows": [1, 2, 3]}) == {"rows": [1, 2, 3]}
        assert worker_b.get_or_compute("k", lambda: calls.append("b") or {"rows": []}) == {"rows": [1, 2, 3]}
        assert calls == ["a"] and worker_b.stats["shared"] == 1
    finally:
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


def test_an_entry_with_a_bad_signature_is_recomputed_not_unpickled():
    client = _redis_or_skip()
    prefix = f"pmo-test:{uuid.uuid4().hex}:"
    forger = SharedCache(secret=b"not-the-portal-key", prefix=prefix, client=client)
    portal = SharedCache(secret=b"portal-key", prefix=prefix, client=client)
    try:
        client.set(prefix + "k", forger.encode("forged"))
        assert portal.get_or_compute("k", lambda: "computed") == "computed"
        assert portal.stats["computed"] == 1
        assert portal.decode(forger.encode("forged")) is None
    finally:
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


def test_a_redis_outage_falls_back_to_computing_in_process():
    cache = SharedCache(secret=b"s", redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert cache.get_or_compute("k", lambda: 42) == 42
    assert cache.get_or_compute("k", lambda: 0) == 42  # from the in-process tier
