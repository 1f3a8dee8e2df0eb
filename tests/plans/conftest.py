"""Plan fixtures: the clock at the demo date, actors per role, a helper to save rows."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
from collections.abc import Iterator

import pytest

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for
from pmo.core import clock
from pmo.plans import service

NOW = dt.datetime(2015, 12, 15, 3, 0, tzinfo=dt.UTC)  # 12:00 JST


@pytest.fixture(autouse=True)
def demo_clock():
    clock.freeze(NOW)
    yield NOW


@pytest.fixture
def actor(make_user):  # type: ignore[no-untyped-def]
    """``actor(Role.BODY_STAFF, CITY_A)`` → (user, Actor)."""

    def make(role: Role, body: str | None = None, ministry: str | None = None):  # type: ignore[no-untyped-def]
        user = make_user(role, body, ministry)
        return user, actor_for(user)

    return make


def row(code: str, version: int | None = None, **raw: str) -> service.RowInput:
    return service.RowInput(code, raw, version=version)


@contextlib.contextmanager
def reaped(worker: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kill a worker subprocess the test left running (a failed assertion) and close its pipes."""
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
        worker.stdout.close()
        worker.stderr.close()
