"""Subsidy records: base tables, budgets, registrations (様式1) with 配分, union transfers,
applications with their workflow, vendor estimates and the 補助対象外 keyword dictionary.

Money is integer yen (BigInteger); 工数 is an exact decimal (Numeric). Category and system names are
stored as the values of ``pmo.subsidy.rules.Category`` / ``System`` (the names the exchange formats use).
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.accounts.models import User
from pmo.core.types import intpk
from pmo.db import Base
from pmo.orgs.models import Body


class BaseTable(Base):
    """One fiscal year's base-amount table as loaded; exactly one per year is in force."""

    __tablename__ = "subsidy_base_tables"

    id: Mapped[intpk]
    fiscal_year: Mapped[int] = mapped_column(index=True)
    in_force: Mapped[bool] = mapped_column(Boolean, default=False)
    illustrative: Mapped[bool] = mapped_column(Boolean, default=False)
    source_name: Mapped[str] = mapped_column(String(200))
    loaded_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    loaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    loaded_by_login: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(default=1)

    rows: Mapped[list[BaseTableRow]] = relationship(
        back_populates="table", cascade="all, delete-orphan", order_by="BaseTableRow.position"
    )
    loaded_by: Mapped[User | None] = relationship()


class BaseTableRow(Base):
    """One breakpoint ``(population, amount)`` of one curve (body kind × system)."""

    __tablename__ = "subsidy_base_table_rows"

    id: Mapped[intpk]
    table_id: Mapped[int] = mapped_column(ForeignKey("subsidy_base_tables.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]  # the order of the file, so an export reads like the upload
    body_kind: Mapped[str] = mapped_column(String(20))
    system: Mapped[str] = mapped_column(String(40))
    population: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)  # yen

    table: Mapped[BaseTable] = relationship(back_populates="rows")


class Budget(Base):
    """The national budget of one fiscal-year project and category (予算の範囲内)."""

    __tablename__ = "subsidy_budgets"
    __table_args__ = (UniqueConstraint("fiscal_year", "category"),)

    id: Mapped[intpk]
    fiscal_year: Mapped[int]
    category: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(default=1)


class Registration(Base):
    """様式1: a body registers one system for one fiscal-year project; ``allocated`` is its 配分."""

    __tablename__ = "subsidy_registrations"
    __table_args__ = (UniqueConstraint("body_id", "fiscal_year", "system"),)

    id: Mapped[intpk]
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    fiscal_year: Mapped[int]
    system: Mapped[str] = mapped_column(String(40))
    allocated: Mapped[int | None] = mapped_column(BigInteger)  # None = keeps its own base
    version: Mapped[int] = mapped_column(default=1)

    body: Mapped[Body] = relationship()


class UnionTransfer(Base):
    """A member body hands part of one system's base to the union that runs that 事務 (§4)."""

    __tablename__ = "subsidy_union_transfers"

    id: Mapped[intpk]
    fiscal_year: Mapped[int] = mapped_column(index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    union_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    system: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    member: Mapped[Body] = relationship(foreign_keys=[member_id])
    union: Mapped[Body] = relationship(foreign_keys=[union_id])


class ApplicationKind(enum.Enum):
    APPLICATION = "application"  # 交付申請
    SETTLEMENT = "settlement"  # 実績報告

    @property
    def label(self) -> str:
        return {"application": "交付申請", "settlement": "実績報告"}[self.value]


class ApplicationState(enum.Enum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    PREFECTURE_CHECKED = "prefecture_checked"
    APPROVED = "approved"
    RETURNED = "returned"

    @property
    def label(self) -> str:
        return STATE_LABELS[self]

    @property
    def editable(self) -> bool:
        return self in (ApplicationState.DRAFT, ApplicationState.RETURNED)


STATE_LABELS = {
    ApplicationState.DRAFT: "作成中",
    ApplicationState.SUBMITTED: "提出",
    ApplicationState.PREFECTURE_CHECKED: "都道府県確認",
    ApplicationState.APPROVED: "承認",
    ApplicationState.RETURNED: "差戻し",
}


class Application(Base):
    """A body's 交付申請 (one round) or 実績報告 of one fiscal-year project."""

    __tablename__ = "subsidy_applications"
    __table_args__ = (UniqueConstraint("body_id", "fiscal_year", "kind", "round"),)

    id: Mapped[intpk]
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    fiscal_year: Mapped[int]
    kind: Mapped[ApplicationKind]
    round: Mapped[int] = mapped_column(default=1)  # 1次, 2次 … (a settlement uses its application's round)
    settles_id: Mapped[int | None] = mapped_column(ForeignKey("subsidy_applications.id"))
    state: Mapped[ApplicationState] = mapped_column(default=ApplicationState.DRAFT)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    submitted_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Fixed at approval: the grant of each category (for a settlement: the settled grant).
    granted_general: Mapped[int | None] = mapped_column(BigInteger)
    granted_pension: Mapped[int | None] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(default=1)

    body: Mapped[Body] = relationship()
    lines: Mapped[list[ApplicationLine]] = relationship(
        back_populates="application", cascade="all, delete-orphan", order_by="ApplicationLine.id"
    )
    events: Mapped[list[ApplicationEvent]] = relationship(
        back_populates="application", cascade="all, delete-orphan", order_by="ApplicationEvent.id"
    )
    settles: Mapped[Application | None] = relationship(remote_side="Application.id")
    submitted_by: Mapped[User | None] = relationship(foreign_keys=[submitted_by_id])
    approved_by: Mapped[User | None] = relationship(foreign_keys=[approved_by_id])

    @property
    def title(self) -> str:
        if self.kind is ApplicationKind.SETTLEMENT:
            return f"{self.fiscal_year}年度事業 実績報告（{self.round}次分）"
        return f"{self.fiscal_year}年度事業 {self.round}次交付申請"


class ApplicationLine(Base):
    """Cost and other income of one system in an application (or actual spending in a settlement)."""

    __tablename__ = "subsidy_application_lines"
    __table_args__ = (UniqueConstraint("application_id", "system"),)

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("subsidy_applications.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(40))
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    other_income: Mapped[int] = mapped_column(BigInteger, default=0)
    estimate_id: Mapped[int | None] = mapped_column(ForeignKey("subsidy_estimates.id", ondelete="SET NULL"))

    application: Mapped[Application] = relationship(back_populates="lines")


class ApplicationEvent(Base):
    """One workflow step: who moved the application from which state to which, with a comment."""

    __tablename__ = "subsidy_application_events"

    id: Mapped[intpk]
    application_id: Mapped[int] = mapped_column(ForeignKey("subsidy_applications.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(30))
    from_state: Mapped[str] = mapped_column(String(30))
    to_state: Mapped[str] = mapped_column(String(30))
    comment: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_login: Mapped[str] = mapped_column(String(64))
    at_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    application: Mapped[Application] = relationship(back_populates="events")


class Estimate(Base):
    """A vendor's 見積書 for one body, system and fiscal-year project."""

    __tablename__ = "subsidy_estimates"

    id: Mapped[intpk]
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    system: Mapped[str] = mapped_column(String(40))
    fiscal_year: Mapped[int]
    vendor: Mapped[str] = mapped_column(String(100))
    stated_total: Mapped[int | None] = mapped_column(BigInteger)
    source_name: Mapped[str | None] = mapped_column(String(200))
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(default=1)

    body: Mapped[Body] = relationship()
    lines: Mapped[list[EstimateLine]] = relationship(
        back_populates="estimate", cascade="all, delete-orphan", order_by="EstimateLine.line_no"
    )
    notes: Mapped[list[EstimateNote]] = relationship(
        back_populates="estimate", cascade="all, delete-orphan", order_by="EstimateNote.id"
    )

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


class EstimateLine(Base):
    """One line: 工程, 作業項目, 作業者区分, 単価 per 単位, 工数, 金額 (yen)."""

    __tablename__ = "subsidy_estimate_lines"

    id: Mapped[intpk]
    estimate_id: Mapped[int] = mapped_column(ForeignKey("subsidy_estimates.id", ondelete="CASCADE"), index=True)
    line_no: Mapped[int]
    phase: Mapped[str] = mapped_column(String(40))
    work_item: Mapped[str] = mapped_column(String(200))
    worker_class: Mapped[str] = mapped_column(String(40))
    unit_price: Mapped[int | None] = mapped_column(BigInteger)
    unit: Mapped[str | None] = mapped_column(String(4))  # 人月 / 人日
    effort: Mapped[Decimal | None] = mapped_column(Numeric(12, 3))
    amount: Mapped[int] = mapped_column(BigInteger)

    estimate: Mapped[Estimate] = relationship(back_populates="lines")


class EstimateNote(Base):
    """A reviewer's note on an estimate, or on one of its lines."""

    __tablename__ = "subsidy_estimate_notes"

    id: Mapped[intpk]
    estimate_id: Mapped[int] = mapped_column(ForeignKey("subsidy_estimates.id", ondelete="CASCADE"), index=True)
    line_no: Mapped[int | None]
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_login: Mapped[str] = mapped_column(String(64))
    at_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    estimate: Mapped[Estimate] = relationship(back_populates="notes")


class NoncoveredKeyword(Base):
    """A word that marks an estimate line as possibly 補助対象外 (editable by the ministry)."""

    __tablename__ = "subsidy_noncovered_keywords"

    id: Mapped[intpk]
    word: Mapped[str] = mapped_column(String(100), unique=True)
