"""Procedures per system, 主務省令事項 rows, and versioned data sets."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.core.types import intpk
from pmo.db import Base
from pmo.orgs.models import Ministry


class Procedure(Base):
    """One 手続 of the 個人番号の利用・情報連携を行う主な手続 tables (slides 75–87)."""

    __tablename__ = "procedures"
    __table_args__ = (UniqueConstraint("system", "seq"),)

    id: Mapped[intpk]
    system: Mapped[str] = mapped_column(String(40), index=True)  # 生活保護システム …
    field: Mapped[str] = mapped_column(String(20))  # documents.models.Field value
    seq: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))  # 手続
    article: Mapped[str] = mapped_column(String(100))  # 条項
    submitter: Mapped[str] = mapped_column(String(100))  # 提出者
    submit_to: Mapped[str] = mapped_column(String(100))  # 提出先
    number_entry: Mapped[str] = mapped_column(Text)  # 個人番号の記入
    linkage: Mapped[str] = mapped_column(Text)  # 情報連携の内容（例）
    omissible: Mapped[str] = mapped_column(Text)  # 省略できる添付書類（例）
    has_linkage: Mapped[bool]
    source: Mapped[str] = mapped_column(String(100))  # スライド番号


class OrdinanceItem(Base):
    """A row of 「番号法別表第１及び第２に規定される主務省令事項の整理」 (slide 12's 児童手当 example)."""

    __tablename__ = "ordinance_items"

    id: Mapped[intpk]
    seq: Mapped[int] = mapped_column(unique=True)
    table1_item: Mapped[str] = mapped_column(String(20))  # 別表１項番
    table1_ordinance: Mapped[str] = mapped_column(String(20))  # 別表１省令 条・号
    actor_legal: Mapped[str] = mapped_column(Text)  # 主体（別表第１上欄）
    actor_actual: Mapped[str] = mapped_column(String(100))
    affair: Mapped[str] = mapped_column(Text)  # 事務（別表第１下欄）
    procedure: Mapped[str] = mapped_column(Text)  # 具体的な手続
    basis_law: Mapped[str] = mapped_column(String(200))
    basis_ordinance: Mapped[str] = mapped_column(String(200))
    basis_notice: Mapped[str] = mapped_column(Text, default="")
    in_table1: Mapped[bool]
    in_table2: Mapped[bool]
    table2_item: Mapped[str] = mapped_column(String(20), default="")
    table2_branch: Mapped[str] = mapped_column(String(20), default="")
    information: Mapped[str] = mapped_column(String(100), default="")
    inquirer: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(Text, default="")
    provider_actual: Mapped[str] = mapped_column(Text, default="")
    needed_information: Mapped[str] = mapped_column(Text, default="")
    years: Mapped[str] = mapped_column(Text, default="")
    form_change: Mapped[str] = mapped_column(Text, default="")
    linkage_start: Mapped[str] = mapped_column(String(40), default="")


class Dataset(Base):
    """A data set a ministry publishes in versions (e.g. データ標準レイアウト)."""

    __tablename__ = "datasets"

    id: Mapped[intpk]
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    ministry_id: Mapped[int] = mapped_column(ForeignKey("ministries.id"), index=True)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    ministry: Mapped[Ministry] = relationship()
    versions: Mapped[list[DatasetVersion]] = relationship(
        back_populates="dataset", order_by="DatasetVersion.number.desc()", cascade="all, delete-orphan"
    )


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)

    id: Mapped[intpk]
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    file_kind: Mapped[str] = mapped_column(String(10))
    mime_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    change_note: Mapped[str] = mapped_column(Text, default="")
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    dataset: Mapped[Dataset] = relationship(back_populates="versions")
