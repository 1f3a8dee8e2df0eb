"""Subsidy fixtures: actors per role built from real users, and a body's registered systems."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from pmo.accounts.models import Role
from pmo.accounts.service import actor_for
from pmo.subsidy import service


@pytest.fixture
def actor(make_user: Any):  # type: ignore[no-untyped-def]
    """``actor(Role.BODY_STAFF, CITY_A)`` → an Actor backed by a real user row."""

    def build(role: Role, body_code: str | None = None, ministry: str | None = None) -> Any:
        if body_code is None and ministry is None and role in (Role.FINANCE_OFFICER, Role.MINISTRY_OFFICER,
                                                                Role.SYSTEM_ADMIN):
            ministry = "mhlw"
        return actor_for(make_user(role, body_code, ministry))

    return build


@pytest.fixture
def register(db_session: Session, body: Any):  # type: ignore[no-untyped-def]
    def run(actor: Any, code: str, systems: set[Any], fy: int = 2014) -> Any:
        b = body(code)
        regs = service.registrations(db_session, b, fy)
        return service.register_systems(db_session, actor, b, fy, systems, service.registration_token(regs))

    return run
