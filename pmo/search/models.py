"""The search outbox (records waiting to be indexed) and searches that found nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pmo.core.types import intpk
from pmo.db import Base


class SearchOutbox(Base):
    """A record to (re)index or delete, written in the same transaction as the record itself."""

    __tablename__ = "search_outbox"

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int]
    queued_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    done_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class SearchMiss(Base):
    """A normalised query that found nothing, counted (for writing the missing FAQ)."""

    __tablename__ = "search_misses"

    id: Mapped[intpk]
    query: Mapped[str] = mapped_column(String(200), unique=True)
    count: Mapped[int] = mapped_column(default=1)
    first_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
