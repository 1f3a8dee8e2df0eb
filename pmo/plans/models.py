"""Plans, their full history, monthly snapshots and import jobs.

Dates may be known to the day or to the month; each date column has a precision column beside it
('day' or 'month'; a month is stored as its first day).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.catalog.models import CompletionField, Subtask
from pmo.core.types import intpk
from pmo.db import Base
from pmo.orgs.models import Body


class DatePrecision(enum.Enum):
    DAY = "day"
    MONTH = "month"


PLAN_FIELDS = (
    "planned_start", "planned_start_precision", "planned_end", "planned_end_precision",
    "actual_start", "actual_start_precision", "actual_end", "actual_end_precision",
    "progress", "not_applicable_reason", "comment", "vendor",
)


class Plan(Base):
    """A body's plan and actuals for one sub-task."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("body_id", "subtask_id"),)

    id: Mapped[intpk]
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    subtask_id: Mapped[int] = mapped_column(ForeignKey("subtasks.id"))
    planned_start: Mapped[dt.date | None]
    planned_start_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    planned_end: Mapped[dt.date | None]
    planned_end_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    actual_start: Mapped[dt.date | None]
    actual_start_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    actual_end: Mapped[dt.date | None]
    actual_end_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    progress: Mapped[int | None]  # 0–100
    not_applicable_reason: Mapped[str | None] = mapped_column(Text)  # set ⇒ 対象外
    comment: Mapped[str | None] = mapped_column(Text)
    vendor: Mapped[str | None] = mapped_column(String(100), index=True)
    updated_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(default=1)

    body: Mapped[Body] = relationship()
    subtask: Mapped[Subtask] = relationship()
    completion_values: Mapped[list[CompletionValue]] = relationship(back_populates="plan", cascade="all, delete-orphan")

    @property
    def is_not_applicable(self) -> bool:
        return bool(self.not_applicable_reason)


class CompletionValue(Base):
    """The value of one completion item for one plan, as text in a canonical form (ISO date, integer …)."""

    __tablename__ = "completion_values"
    __table_args__ = (UniqueConstraint("plan_id", "field_id"),)

    id: Mapped[intpk]
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    field_id: Mapped[int] = mapped_column(ForeignKey("completion_fields.id"))
    value: Mapped[str | None] = mapped_column(Text)

    plan: Mapped[Plan] = relationship(back_populates="completion_values")
    field: Mapped[CompletionField] = relationship()


class PlanRevision(Base):
    """One saved state of a plan: the full field values after a change, with who, when and how.

    The state of any body on any past date is the newest revision per plan recorded on or before it.
    """

    __tablename__ = "plan_revisions"

    id: Mapped[intpk]
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    subtask_id: Mapped[int] = mapped_column(ForeignKey("subtasks.id"))
    recorded_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    channel: Mapped[str] = mapped_column(String(10))  # ui / import / api / demo
    batch_id: Mapped[str | None] = mapped_column(String(40))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The state after the change again, as typed columns filled from ``after`` on insert (see
    # ``revision_state``), so replaying a past date is a plain scan with no JSON decoding.
    planned_start: Mapped[dt.date | None]
    planned_start_precision: Mapped[DatePrecision | None]
    planned_end: Mapped[dt.date | None]
    planned_end_precision: Mapped[DatePrecision | None]
    actual_start: Mapped[dt.date | None]
    actual_start_precision: Mapped[DatePrecision | None]
    actual_end: Mapped[dt.date | None]
    actual_end_precision: Mapped[DatePrecision | None]
    progress: Mapped[int | None]
    not_applicable_reason: Mapped[str | None] = mapped_column(Text)
    vendor: Mapped[str | None] = mapped_column(String(100))


REVISION_STATE_FIELDS = (
    "planned_start", "planned_start_precision", "planned_end", "planned_end_precision", "actual_start",
    "actual_start_precision", "actual_end", "actual_end_precision", "progress", "not_applicable_reason", "vendor",
)


def revision_state(after: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the typed state columns of a revision from its ``after`` snapshot (ISO dates, 'day'/'month')."""
    after = after or {}
    out: dict[str, Any] = {}
    for name in REVISION_STATE_FIELDS:
        value = after.get(name)
        if name.endswith("_precision"):
            value = DatePrecision(value) if value else DatePrecision.DAY
        elif name in ("planned_start", "planned_end", "actual_start", "actual_end"):
            value = dt.date.fromisoformat(value) if isinstance(value, str) and value else value
        out[name] = value
    return out


def with_revision_state(row: dict[str, Any]) -> dict[str, Any]:
    """Return a plan_revisions row (for a bulk insert) with its typed state columns filled from ``after``."""
    return {**row, **revision_state(row.get("after"))}


@event.listens_for(PlanRevision, "before_insert")
def _fill_revision_state(_mapper: Any, _connection: Any, revision: PlanRevision) -> None:
    for name, value in revision_state(revision.after).items():
        setattr(revision, name, value)


class MonthlySnapshot(Base):
    """A monthly close (月次締め): the frozen state of every plan at the end of a month."""

    __tablename__ = "monthly_snapshots"

    id: Mapped[intpk]
    month: Mapped[dt.date] = mapped_column(unique=True)  # first day of the month
    as_of: Mapped[dt.date]  # last day of the month
    closed_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    row_count: Mapped[int] = mapped_column(default=0)


class SnapshotRow(Base):
    """One plan's state in a monthly snapshot."""

    __tablename__ = "snapshot_rows"
    __table_args__ = (UniqueConstraint("snapshot_id", "body_id", "subtask_id"),)

    id: Mapped[intpk]
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("monthly_snapshots.id", ondelete="CASCADE"), index=True)
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"))
    subtask_id: Mapped[int] = mapped_column(ForeignKey("subtasks.id"))
    planned_start: Mapped[dt.date | None]
    planned_start_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    planned_end: Mapped[dt.date | None]
    planned_end_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    actual_start: Mapped[dt.date | None]
    actual_start_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    actual_end: Mapped[dt.date | None]
    actual_end_precision: Mapped[DatePrecision] = mapped_column(default=DatePrecision.DAY)
    progress: Mapped[int | None]
    not_applicable: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20))  # not_started / in_progress / done / not_applicable


class ImportStatus(enum.Enum):
    PREVIEWED = "previewed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # 中断: the process died (lease expired)
    REJECTED = "rejected"  # errors found, nothing written


class ImportJob(Base):
    """An upload of plans (one body's sheet or the national workbook): preview, then commit."""

    __tablename__ = "import_jobs"

    id: Mapped[intpk]
    batch_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # plans
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    stored_path: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body_id: Mapped[int | None] = mapped_column(ForeignKey("bodies.id"))  # None: national
    status: Mapped[ImportStatus]
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    total_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # created / updated / unchanged
    errors: Mapped[list[Any] | None] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text)
    phase: Mapped[str] = mapped_column(String(20), default="validate")  # validate / apply
    national: Mapped[bool] = mapped_column(default=False)


class PlanComment(Base):
    """A support comment (支援コメント) by prefecture staff or a ministry on a body's plans."""

    __tablename__ = "plan_comments"

    id: Mapped[intpk]
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    subtask_id: Mapped[int | None] = mapped_column(ForeignKey("subtasks.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(100))
    author_org: Mapped[str] = mapped_column(String(100))
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    text: Mapped[str] = mapped_column(Text)

    subtask: Mapped[Subtask | None] = relationship()
