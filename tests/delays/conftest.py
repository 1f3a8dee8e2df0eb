"""Fixtures for delay tests: actors per role, built from real users."""

from __future__ import annotations

from typing import Any

import pytest

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for


@pytest.fixture
def actor(make_user: Any):  # type: ignore[no-untyped-def]
    """Return an Actor: ``actor(Role.BODY_STAFF, CITY_A)`` or ``actor(Role.MINISTRY_OFFICER)``."""

    def make(role: Role, body_code: str | None = None, ministry: str | None = None) -> Any:
        if body_code is None and ministry is None and role in (Role.MINISTRY_OFFICER, Role.SYSTEM_ADMIN,
                                                               Role.FINANCE_OFFICER):
            ministry = "mic"
        return actor_for(make_user(role, body_code, ministry))

    return make
