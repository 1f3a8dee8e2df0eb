"""Follow-up cases (原因の確認・課題解決フォロー): one per body, with a timeline of entries."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Date, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.accounts.models import User
from pmo.core.types import intpk
from pmo.db import Base
from pmo.orgs.models import Body


class CaseStatus(enum.Enum):
    OPEN = "open"
    WATCHING = "watching"
    RESOLVED = "resolved"

    @property
    def label(self) -> str:
        return CASE_STATUS_LABELS[self]


CASE_STATUS_LABELS = {CaseStatus.OPEN: "対応中", CaseStatus.WATCHING: "経過観察", CaseStatus.RESOLVED: "解決"}


class CaseCause(enum.Enum):
    BUDGET = "budget"
    PROCUREMENT = "procurement"
    VENDOR = "vendor"
    STAFFING = "staffing"
    COORDINATION = "coordination"
    OTHER = "other"

    @property
    def label(self) -> str:
        return CASE_CAUSE_LABELS[self]


CASE_CAUSE_LABELS = {
    CaseCause.BUDGET: "予算",
    CaseCause.PROCUREMENT: "調達・契約",
    CaseCause.VENDOR: "ベンダー",
    CaseCause.STAFFING: "体制・人員",
    CaseCause.COORDINATION: "他団体・国との調整",
    CaseCause.OTHER: "その他",
}


class EntryKind(enum.Enum):
    OPENED = "opened"
    ACTION = "action"  # 国の対応（課題解決フォロー）
    ANSWER = "answer"  # 団体からの回答（原因の確認）
    COMMENT = "comment"  # 都道府県の支援コメント
    UPDATE = "update"  # 状況・原因・担当・次回連絡日の変更
    NOTE = "note"  # 府省内メモ: the ministry's own record, never shown to the body or the prefecture

    @property
    def label(self) -> str:
        return ENTRY_KIND_LABELS[self]


ENTRY_KIND_LABELS = {
    EntryKind.OPENED: "フォロー開始",
    EntryKind.ACTION: "国の対応",
    EntryKind.ANSWER: "団体からの回答",
    EntryKind.COMMENT: "都道府県のコメント",
    EntryKind.UPDATE: "状況の変更",
    EntryKind.NOTE: "府省内メモ",
}

# Entries only case managers (ministry officers) read: not on the body's or the prefecture's screens,
# and their text is not in the audit values shown to a body admin (pmo.audit.service.RESTRICTED_ACTIONS).
INTERNAL_KINDS = frozenset({EntryKind.NOTE})


class FollowupCase(Base):
    """A ministry's follow-up of one body's delay until it is resolved."""

    __tablename__ = "followup_cases"

    id: Mapped[intpk]
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    cause: Mapped[CaseCause]
    status: Mapped[CaseStatus] = mapped_column(index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    next_contact_date: Mapped[dt.date | None] = mapped_column(Date)
    subtasks: Mapped[str | None] = mapped_column(String(200))  # "B-2 B-3": the sub-tasks in question
    signal_summary: Mapped[str | None] = mapped_column(Text)  # the signals as explained when opened
    as_of: Mapped[dt.date] = mapped_column(Date)  # the date the signals were judged on
    vendor: Mapped[str | None] = mapped_column(String(100), index=True)
    batch_id: Mapped[str | None] = mapped_column(String(40), index=True)  # cases opened together
    opened_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    resolved_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(default=1)

    body: Mapped[Body] = relationship()
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    opened_by: Mapped[User | None] = relationship(foreign_keys=[opened_by_id])
    entries: Mapped[list[CaseEntry]] = relationship(
        back_populates="case", order_by="CaseEntry.id", cascade="all, delete-orphan"
    )

    @property
    def is_open(self) -> bool:
        return self.status is not CaseStatus.RESOLVED


class CaseEntry(Base):
    """One step in a case's timeline: an action, an answer, a comment or a change of status."""

    __tablename__ = "case_entries"

    id: Mapped[intpk]
    case_id: Mapped[int] = mapped_column(ForeignKey("followup_cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[EntryKind]
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(200))
    at_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    case: Mapped[FollowupCase] = relationship(back_populates="entries")
