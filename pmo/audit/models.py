"""Audit entries. The application has no path that changes or deletes one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pmo.core.types import intpk
from pmo.db import Base


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[intpk]
    at_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    action: Mapped[str] = mapped_column(String(60), index=True)
    outcome: Mapped[str] = mapped_column(String(20), default="success")  # success / denied / failure
    actor_user_id: Mapped[int | None] = mapped_column(index=True)
    actor_login: Mapped[str | None] = mapped_column(String(64))
    actor_body_code: Mapped[str | None] = mapped_column(String(6))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(40))
    target_body_code: Mapped[str | None] = mapped_column(String(6), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(10), default="ui")  # ui / import / api / cli
    batch_id: Mapped[str | None] = mapped_column(String(40))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
