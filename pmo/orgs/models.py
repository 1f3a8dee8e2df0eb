"""Bodies (地方公共団体) and ministries."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pmo.core.types import intpk
from pmo.db import Base


class BodyKind(enum.Enum):
    PREFECTURE = "prefecture"
    DESIGNATED_CITY = "designated_city"
    CORE_CITY = "core_city"
    SPECIAL_WARD = "special_ward"
    CITY = "city"
    TOWN = "town"
    VILLAGE = "village"
    UNION = "union"

    @property
    def label(self) -> str:
        return BODY_KIND_LABELS[self]

    @property
    def is_municipality(self) -> bool:
        return self not in (BodyKind.PREFECTURE, BodyKind.UNION)

    @property
    def subsidy_kind(self) -> str | None:
        """The body kind of the subsidy base tables (特別区 count as municipality)."""
        if self is BodyKind.PREFECTURE:
            return "prefecture"
        return "municipality" if self.is_municipality else None


BODY_KIND_LABELS = {
    BodyKind.PREFECTURE: "都道府県",
    BodyKind.DESIGNATED_CITY: "政令指定都市",
    BodyKind.CORE_CITY: "中核市",
    BodyKind.SPECIAL_WARD: "特別区",
    BodyKind.CITY: "市",
    BodyKind.TOWN: "町",
    BodyKind.VILLAGE: "村",
    BodyKind.UNION: "一部事務組合・広域連合",
}
BODY_KIND_BY_LABEL = {label: kind for kind, label in BODY_KIND_LABELS.items()}


class Body(Base):
    """A local government body identified by its 全国地方公共団体コード."""

    __tablename__ = "bodies"

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[BodyKind]
    prefecture_code: Mapped[str] = mapped_column(String(2), index=True)
    prefecture_id: Mapped[int | None] = mapped_column(ForeignKey("bodies.id"))
    population: Mapped[int | None]
    households: Mapped[int | None]
    population_date: Mapped[dt.date | None]
    purpose: Mapped[str | None] = mapped_column(String(100))  # a union's 事務 (e.g. 後期高齢者医療)

    prefecture: Mapped[Body | None] = relationship(remote_side="Body.id", back_populates="municipalities")
    municipalities: Mapped[list[Body]] = relationship(back_populates="prefecture")
    members: Mapped[list[UnionMember]] = relationship(
        back_populates="union", foreign_keys="UnionMember.union_id", cascade="all, delete-orphan"
    )

    @property
    def prefecture_name(self) -> str:
        return self.name if self.kind is BodyKind.PREFECTURE else (self.prefecture.name if self.prefecture else "")

    @property
    def full_name(self) -> str:
        """Prefecture and name, the way staff write an address header (北海道札幌市)."""
        if self.kind is BodyKind.PREFECTURE or self.prefecture is None:
            return self.name
        return f"{self.prefecture.name}{self.name}"


class UnionMember(Base):
    """A member body of a union (一部事務組合・広域連合)."""

    __tablename__ = "union_members"
    __table_args__ = (UniqueConstraint("union_id", "member_id"),)

    id: Mapped[intpk]
    union_id: Mapped[int] = mapped_column(ForeignKey("bodies.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("bodies.id", ondelete="CASCADE"), index=True)

    union: Mapped[Body] = relationship(foreign_keys=[union_id], back_populates="members")
    member: Mapped[Body] = relationship(foreign_keys=[member_id])


class Ministry(Base):
    """A ministry or agency steering the rollout (内閣官房, 総務省, 厚生労働省 …)."""

    __tablename__ = "ministries"

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    short_name: Mapped[str] = mapped_column(String(20))
