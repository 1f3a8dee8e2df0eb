"""Plans, their full history, monthly snapshots and import jobs.

Dates may be known to the day or to the month; each date column has a precision column beside it
('day' or 'month'; a month is stored as its first day).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

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
    # The newest revision of each plan (one per plan with history): finds plans without history and
    # plans left with two open revisions by a bulk write, without reading the whole history.
    __table_args__ = (Index("ix_plan_revisions_open", "plan_id", postgresql_where=text("superseded_dt IS NULL"),
                            sqlite_where=text("superseded_dt IS NULL")),)

    id: Mapped[intpk]
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    subtask_id: Mapped[int] = mapped_column(ForeignKey("subtasks.id"))
    recorded_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    # When the next revision of the same plan (in recorded_dt, id order) was recorded; NULL for the
    # newest. The state on a past date is then a plain filter (see ``link_revisions``).
    superseded_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
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


# --- the revision chain --------------------------------------------------------------------------
#
# Each revision's ``superseded_dt`` is the ``recorded_dt`` of the next revision of the same plan in
# (recorded_dt, id) order, NULL for the newest: the state on D is the revision with recorded_dt <
# cutoff and (superseded_dt IS NULL or superseded_dt >= cutoff), exactly the newest by (recorded_dt,
# id) before the cutoff (a revision tied with a later one has an empty interval). Every writer inserts
# revisions open (NULL) and then calls ``link_revisions`` in the same transaction: the ORM path by the
# flush event below, ``bulk_insert`` itself. Writers lock the plan row first (save_sheet's FOR UPDATE,
# the imports' UPDATE), so on PostgreSQL two transactions appending to one plan link one after the other.

_LINK_CHUNK = 500


def link_revisions(connection: Connection, plan_ids: Collection[int] | None = None) -> None:
    """Set ``superseded_dt`` for every revision of ``plan_ids`` (None: of every plan left with two open revisions).

    One window over the plans' revisions; only rows whose value changes are written.
    """
    r = PlanRevision.__table__
    if plan_ids is None:
        scopes: list[Any] = [select(r.c.plan_id).where(r.c.superseded_dt.is_(None))
                             .group_by(r.c.plan_id).having(func.count() > 1)]
    else:
        ids = sorted(set(plan_ids))
        scopes = [ids[i:i + _LINK_CHUNK] for i in range(0, len(ids), _LINK_CHUNK)]
    for scope in scopes:
        chain = select(r.c.id, func.lead(r.c.recorded_dt).over(
            partition_by=r.c.plan_id, order_by=(r.c.recorded_dt, r.c.id)).label("next")
        ).where(r.c.plan_id.in_(scope)).subquery()
        connection.execute(update(r).values(superseded_dt=chain.c.next)
                           .where(r.c.id == chain.c.id, r.c.superseded_dt.is_distinct_from(chain.c.next)))


def chain_batch(rows: Sequence[dict[str, Any]], dialect: str) -> None:
    """Fill ``superseded_dt`` of new revision rows (in insert order) from the batch itself.

    Only links within the batch; the caller then links the plans that also had older revisions
    (``link_revisions()``, they are left with two open ones). Ordered as the database orders
    ``recorded_dt``: the instant on PostgreSQL, the stored wall time on SQLite.
    """
    def key(value: dt.datetime) -> dt.datetime:
        if dialect == "postgresql":
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.replace(tzinfo=None)

    order = sorted(range(len(rows)), key=lambda i: (rows[i]["plan_id"], key(rows[i]["recorded_dt"]), i))
    for here, after in zip(order, order[1:] + [None]):
        same = after is not None and rows[after]["plan_id"] == rows[here]["plan_id"]
        rows[here]["superseded_dt"] = rows[after]["recorded_dt"] if same else None


@event.listens_for(Session, "after_flush")
def _note_new_revisions(session: Session, _context: Any) -> None:
    plan_ids = {obj.plan_id for obj in session.new if isinstance(obj, PlanRevision)}
    if plan_ids:
        session.info.setdefault("pmo_revision_plans", set()).update(plan_ids)


@event.listens_for(Session, "after_flush_postexec")
def _link_new_revisions(session: Session, _context: Any) -> None:
    plan_ids = session.info.pop("pmo_revision_plans", None)
    if not plan_ids:
        return
    link_revisions(session.connection(), plan_ids)
    for obj in list(session.identity_map.values()):  # loaded revisions of these plans: reread the link
        if isinstance(obj, PlanRevision) and obj.plan_id in plan_ids:
            session.expire(obj, ["superseded_dt"])


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
