"""FAQs, votes, inquiries and their answers."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.core.types import intpk
from pmo.db import Base
from pmo.orgs.models import Body, Ministry

CATEGORIES = [
    "スケジュール",
    "番号の利用",
    "情報連携",
    "中間サーバー",
    "システム改修",
    "補助金",
    "本人確認",
    "安全管理措置・保護評価",
    "条例・規程",
    "デジタルPMO",
    "その他",
]


class FaqStatus(enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"

    @property
    def label(self) -> str:
        return "下書き" if self is FaqStatus.DRAFT else "公開"


class Faq(Base):
    """One question and its answer; the answer is sanitised HTML (nh3 allowlist)."""

    __tablename__ = "faqs"

    id: Mapped[intpk]
    category: Mapped[str] = mapped_column(String(40), index=True)
    question: Mapped[str] = mapped_column(Text)
    answer_html: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200), default="")  # e.g. 説明会資料 スライド20
    status: Mapped[FaqStatus] = mapped_column(default=FaqStatus.DRAFT)
    ministry_id: Mapped[int | None] = mapped_column(ForeignKey("ministries.id"), index=True)
    source_inquiry_id: Mapped[int | None]  # the inquiry it was written from (no FK: inquiries point here)
    helpful_count: Mapped[int] = mapped_column(default=0)
    seed_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    created_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    published_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(default=1)

    ministry: Mapped[Ministry | None] = relationship()
    related: Mapped[list[FaqDocument]] = relationship(back_populates="faq", cascade="all, delete-orphan")

    __mapper_args__ = {"version_id_col": version}


class FaqDocument(Base):
    """A document related to a FAQ."""

    __tablename__ = "faq_documents"
    __table_args__ = (UniqueConstraint("faq_id", "document_id"),)

    id: Mapped[intpk]
    faq_id: Mapped[int] = mapped_column(ForeignKey("faqs.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))

    faq: Mapped[Faq] = relationship(back_populates="related")
    document: Mapped[Document] = relationship()  # noqa: F821


class FaqVote(Base):
    """One user's 「役に立った」 on a FAQ (once per user)."""

    __tablename__ = "faq_votes"
    __table_args__ = (UniqueConstraint("faq_id", "user_id"),)

    id: Mapped[intpk]
    faq_id: Mapped[int] = mapped_column(ForeignKey("faqs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    voted_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class InquiryStatus(enum.Enum):
    OPEN = "open"
    ANSWERED = "answered"

    @property
    def label(self) -> str:
        return "回答待ち" if self is InquiryStatus.OPEN else "回答済み"


class Inquiry(Base):
    """A body's question to the ministry in charge, with a reply deadline."""

    __tablename__ = "inquiries"

    id: Mapped[intpk]
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    asker_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ministry_id: Mapped[int] = mapped_column(ForeignKey("ministries.id"), index=True)
    category: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[InquiryStatus] = mapped_column(default=InquiryStatus.OPEN, index=True)
    asked_dt: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    due_date: Mapped[dt.date]
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_dt: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    faq_id: Mapped[int | None] = mapped_column(ForeignKey("faqs.id"))
    version: Mapped[int] = mapped_column(default=1)

    body: Mapped[Body] = relationship()
    ministry: Mapped[Ministry] = relationship()
    asker: Mapped[User] = relationship(foreign_keys=[asker_id])  # noqa: F821
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])  # noqa: F821

    __mapper_args__ = {"version_id_col": version}
