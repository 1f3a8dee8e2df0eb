"""Read and write settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pmo.core import clock
from pmo.settings.models import Setting


def get_setting(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(Setting, key)
    return default if row is None else row.value


def set_setting(session: Session, key: str, value: Any) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value, updated_dt=clock.now()))
    else:
        row.value, row.updated_dt = value, clock.now()
    session.flush()
