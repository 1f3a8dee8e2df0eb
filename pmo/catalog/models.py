"""Catalog models. What a sub-task means on a date is read from the catalog version in force then.

A system admin never edits terms in place: an edit creates a new ``CatalogVersion`` with an effective
date, copying every ``SubtaskTerms`` row, so delay signals for past dates keep their meaning.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.core.types import intpk
from pmo.db import Base


class WorkItem(Base):
    """A 作業項目 (A–K)."""

    __tablename__ = "work_items"

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(2), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    sort_order: Mapped[int]

    subtasks: Mapped[list[Subtask]] = relationship(back_populates="work_item", order_by="Subtask.seq")


class Milestone(Base):
    """A national milestone (e.g. 2016-01-01 個人番号の利用開始)."""

    __tablename__ = "milestones"

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    due_date: Mapped[dt.date]
    description: Mapped[str | None] = mapped_column(Text)


class Subtask(Base):
    """A sub-task of the 実行編 (e.g. B-2). Its terms (milestone, applicability) live in SubtaskTerms."""

    __tablename__ = "subtasks"

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(8), unique=True)
    work_item_id: Mapped[int] = mapped_column(ForeignKey("work_items.id"))
    seq: Mapped[int]  # order within the work item: X-n precedes X-n+1
    name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    sort_order: Mapped[int]

    work_item: Mapped[WorkItem] = relationship(back_populates="subtasks")
    completion_fields: Mapped[list[CompletionField]] = relationship(
        back_populates="subtask", order_by="CompletionField.sort_order", cascade="all, delete-orphan"
    )


class CatalogVersion(Base):
    """A dated version of the catalog's terms; the newest with effective_from ≤ D applies on D."""

    __tablename__ = "catalog_versions"

    id: Mapped[intpk]
    effective_from: Mapped[dt.date] = mapped_column(unique=True)
    note: Mapped[str] = mapped_column(Text)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    terms: Mapped[list[SubtaskTerms]] = relationship(back_populates="version", cascade="all, delete-orphan")


class SubtaskTerms(Base):
    """What a sub-task demands under one catalog version: its milestone and which body kinds it applies to."""

    __tablename__ = "subtask_terms"
    __table_args__ = (UniqueConstraint("version_id", "subtask_id"),)

    id: Mapped[intpk]
    version_id: Mapped[int] = mapped_column(ForeignKey("catalog_versions.id", ondelete="CASCADE"), index=True)
    subtask_id: Mapped[int] = mapped_column(ForeignKey("subtasks.id"))
    milestone_id: Mapped[int] = mapped_column(ForeignKey("milestones.id"))
    applies_prefecture: Mapped[bool]
    applies_municipality: Mapped[bool]
    applies_union: Mapped[bool]
    predecessor_id: Mapped[int | None] = mapped_column(ForeignKey("subtasks.id"))  # None: X-(n-1) by seq

    version: Mapped[CatalogVersion] = relationship(back_populates="terms")
    subtask: Mapped[Subtask] = relationship(foreign_keys=[subtask_id])
    milestone: Mapped[Milestone] = relationship()


class FieldType(enum.Enum):
    DATE = "date"
    INTEGER = "integer"
    TEXT = "text"
    CHOICE = "choice"
    YES_NO = "yes_no"


class CompletionField(Base):
    """An item to fill when a sub-task is completed (I-3 評価書公表日, E-6 研修受講者数 …)."""

    __tablename__ = "completion_fields"
    __table_args__ = (UniqueConstraint("subtask_id", "code"),)

    id: Mapped[intpk]
    subtask_id: Mapped[int] = mapped_column(ForeignKey("subtasks.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))
    field_type: Mapped[FieldType]
    choices: Mapped[list[Any] | None] = mapped_column(JSON)
    required: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(default=0)
    help_text: Mapped[str | None] = mapped_column(Text)

    subtask: Mapped[Subtask] = relationship(back_populates="completion_fields")
