"""Documents, their file versions, bodies' reading marks and subscriptions."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from pmo.core.types import intpk
from pmo.db import Base
from pmo.orgs.models import Body, Ministry


class Field(enum.Enum):
    """分野: the social-security fields of the source document, plus 共通."""

    PUBLIC_ASSISTANCE = "public_assistance"
    DISABILITY = "disability"
    CHILD_WELFARE = "child_welfare"
    NATIONAL_HEALTH_INSURANCE = "nhi"
    LATE_ELDERLY_MEDICAL = "late_elderly"
    LONG_TERM_CARE = "ltc"
    HEALTH = "health"
    NATIONAL_PENSION = "pension"
    COMMON = "common"

    @property
    def label(self) -> str:
        return FIELD_LABELS[self]


FIELD_LABELS = {
    Field.PUBLIC_ASSISTANCE: "生活保護",
    Field.DISABILITY: "障害者福祉",
    Field.CHILD_WELFARE: "児童福祉",
    Field.NATIONAL_HEALTH_INSURANCE: "国民健康保険",
    Field.LATE_ELDERLY_MEDICAL: "後期高齢者医療",
    Field.LONG_TERM_CARE: "介護保険",
    Field.HEALTH: "健康管理",
    Field.NATIONAL_PENSION: "国民年金",
    Field.COMMON: "共通",
}
FIELD_BY_LABEL = {label: f for f, label in FIELD_LABELS.items()}


class Audience(enum.Enum):
    ALL = "all"
    PREFECTURES = "prefectures"
    MINISTRIES = "ministries"

    @property
    def label(self) -> str:
        return AUDIENCE_LABELS[self]


AUDIENCE_LABELS = {
    Audience.ALL: "すべての団体",
    Audience.PREFECTURES: "都道府県のみ",
    Audience.MINISTRIES: "府省のみ",
}


class DocumentKind(enum.Enum):
    NOTICE = "notice"  # a ministry's document
    PRACTICE = "practice"  # a body's own 取組情報

    @property
    def label(self) -> str:
        return "府省の文書" if self is DocumentKind.NOTICE else "団体の取組情報"


class DocumentStatus(enum.Enum):
    DRAFT = "draft"
    PENDING = "pending"  # a body's 取組情報 waiting for a ministry officer
    PUBLISHED = "published"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS = {
    DocumentStatus.DRAFT: "下書き",
    DocumentStatus.PENDING: "承認待ち",
    DocumentStatus.PUBLISHED: "公開",
    DocumentStatus.REJECTED: "差戻し",
    DocumentStatus.WITHDRAWN: "公開停止",
}


class Document(Base):
    """A published (or draft) document; its files are ``DocumentVersion`` rows, newest = 最新版."""

    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_status_publish", "status", "publish_from_dt"),)

    id: Mapped[intpk]
    kind: Mapped[DocumentKind] = mapped_column(default=DocumentKind.NOTICE)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    field: Mapped[Field] = mapped_column(default=Field.COMMON)
    tags: Mapped[str] = mapped_column(String(300), default="")
    audience: Mapped[Audience] = mapped_column(default=Audience.ALL)
    status: Mapped[DocumentStatus] = mapped_column(default=DocumentStatus.DRAFT)
    ministry_id: Mapped[int | None] = mapped_column(ForeignKey("ministries.id"), index=True)
    body_id: Mapped[int | None] = mapped_column(ForeignKey("bodies.id"), index=True)
    publish_from_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    publish_until: Mapped[dt.date | None]  # 掲載終了日 (last day shown)
    published_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    review_note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # When the search index last saw this record: scheduled publication and 掲載終了日 re-queue it.
    indexed_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(default=1)

    ministry: Mapped[Ministry | None] = relationship()
    body: Mapped[Body | None] = relationship()
    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="DocumentVersion.number.desc()", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def latest(self) -> DocumentVersion | None:
        return self.versions[0] if self.versions else None

    @property
    def tag_list(self) -> list[str]:
        return [t for t in (self.tags or "").split(",") if t]

    @property
    def owner_label(self) -> str:
        if self.ministry is not None:
            return self.ministry.name
        return self.body.full_name if self.body is not None else ""


class DocumentVersion(Base):
    """One uploaded file of a document; the file sits under ``uploads/<storage_key>``."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    id: Mapped[intpk]
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    file_kind: Mapped[str] = mapped_column(String(10))
    mime_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    change_note: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = deferred(mapped_column(Text, default=""))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    document: Mapped[Document] = relationship(back_populates="versions")


class DocumentRead(Base):
    """Which version of a document a user has opened (unread mark when a newer one exists)."""

    __tablename__ = "document_reads"
    __table_args__ = (UniqueConstraint("user_id", "document_id"),)

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version_number: Mapped[int]
    read_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Subscription(Base):
    """A user follows a 分野 or a 府省 (exactly one of the two)."""

    __tablename__ = "document_subscriptions"
    __table_args__ = (UniqueConstraint("user_id", "field", "ministry_id"),)

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    field: Mapped[Field | None]
    ministry_id: Mapped[int | None] = mapped_column(ForeignKey("ministries.id", ondelete="CASCADE"))
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    ministry: Mapped[Ministry | None] = relationship()

    @property
    def label(self) -> str:
        if self.field is not None:
            return f"分野：{self.field.label}"
        return f"府省：{self.ministry.name if self.ministry else ''}"
