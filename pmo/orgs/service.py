"""Organisation use cases: seeding the real list of bodies, unions and ministries; scoped body lists."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from pmo.accounts.permissions import Actor, Permission, can, visible_prefecture
from pmo.core.errors import NotFound
from pmo.orgs.models import BODY_KIND_BY_LABEL, Body, BodyKind, Ministry, UnionMember

MINISTRIES = [
    ("cas", "内閣官房", "内閣官房"),
    ("mic", "総務省", "総務省"),
    ("mhlw", "厚生労働省", "厚労省"),
    ("mext", "文部科学省", "文科省"),
    ("ppc", "個人情報保護委員会", "個情委"),
    ("cao", "内閣府", "内閣府"),
    ("mof", "財務省", "財務省"),
    ("nta", "国税庁", "国税庁"),
]

POPULATION_CLASSES: list[tuple[int, int | None, str]] = [
    (0, 10_000, "1万人未満"),
    (10_000, 50_000, "1万〜5万人"),
    (50_000, 100_000, "5万〜10万人"),
    (100_000, 300_000, "10万〜30万人"),
    (300_000, 1_000_000, "30万〜100万人"),
    (1_000_000, None, "100万人以上"),
]


def jis_check_digit(five: str) -> str:
    """Return the JIS X 0402 check digit of a five-digit code."""
    total = sum(int(d) * w for d, w in zip(five, (6, 5, 4, 3, 2)))
    return str((11 - total % 11) % 10)


def valid_body_code(code: str) -> bool:
    return len(code) == 6 and code.isdigit() and jis_check_digit(code[:5]) == code[5]


@dataclass(frozen=True)
class SeedResult:
    created: int
    updated: int
    unchanged: int


def seed_ministries(session: Session) -> SeedResult:
    created = updated = unchanged = 0
    for code, name, short in MINISTRIES:
        row = session.scalar(select(Ministry).where(Ministry.code == code))
        if row is None:
            session.add(Ministry(code=code, name=name, short_name=short))
            created += 1
        elif (row.name, row.short_name) != (name, short):
            row.name, row.short_name = name, short
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return SeedResult(created, updated, unchanged)


def seed_bodies(session: Session, csv_text: str) -> SeedResult:
    """Insert or update the 47 prefectures and 1,741 municipalities from bodies.csv (idempotent)."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    existing = {b.code: b for b in session.scalars(select(Body))}
    created = updated = unchanged = 0
    prefectures: dict[str, Body] = {}
    for row in sorted(rows, key=lambda r: r["kind"] != "都道府県"):
        kind = BODY_KIND_BY_LABEL[row["kind"]]
        values = {
            "name": row["name"],
            "name_kana": row.get("name_kana") or None,
            "kind": kind,
            "prefecture_code": row["code"][:2],
            "population": int(row["population"]),
            "households": int(row["households"]) if row.get("households") else None,
            "population_date": dt.date.fromisoformat(row["reference_date"]),
        }
        body = existing.get(row["code"])
        if body is None:
            body = Body(code=row["code"], **values)
            session.add(body)
            existing[row["code"]] = body
            created += 1
        elif any(getattr(body, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(body, key, value)
            updated += 1
        else:
            unchanged += 1
        if kind is BodyKind.PREFECTURE:
            prefectures[body.prefecture_code] = body
    session.flush()
    for body in existing.values():
        if body.kind is not BodyKind.PREFECTURE:
            parent = prefectures.get(body.prefecture_code)
            if parent is not None and body.prefecture_id != parent.id:
                body.prefecture_id = parent.id
    session.flush()
    return SeedResult(created, updated, unchanged)


def union_code(prefecture_code: str) -> str:
    """A portal-internal code for a union (the real 団体コード of unions were not in our source)."""
    return f"U{prefecture_code}001"


def seed_unions(session: Session, csv_text: str) -> SeedResult:
    """Insert the 47 後期高齢者医療広域連合 with their member bodies (idempotent)."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    bodies = {b.code: b for b in session.scalars(select(Body).where(Body.kind != BodyKind.UNION))}
    prefectures = {b.name: b for b in bodies.values() if b.kind is BodyKind.PREFECTURE}
    created = updated = unchanged = 0
    for row in rows:
        prefecture = prefectures[row["prefecture"]]
        code = union_code(prefecture.prefecture_code)
        union = session.scalar(select(Body).where(Body.code == code))
        members = [bodies[c] for c in row["member_codes"].split()]
        population = sum(m.population or 0 for m in members)
        if union is None:
            union = Body(
                code=code, name=row["union_name"], kind=BodyKind.UNION, prefecture_code=prefecture.prefecture_code,
                prefecture_id=prefecture.id, purpose=row["purpose"], population=population,
                population_date=prefecture.population_date,
            )
            session.add(union)
            session.flush()
            created += 1
        else:
            unchanged += 1
        have = {m.member_id for m in union.members}
        for member in members:
            if member.id not in have:
                union.members.append(UnionMember(member_id=member.id))
    session.flush()
    return SeedResult(created, updated, unchanged)


def seed_all(session: Session, seed_dir: Path) -> dict[str, SeedResult]:
    """Seed ministries, bodies and unions from ``seed/orgs``; safe to run again."""
    return {
        "ministries": seed_ministries(session),
        "bodies": seed_bodies(session, (seed_dir / "orgs" / "bodies.csv").read_text(encoding="utf-8")),
        "unions": seed_unions(session, (seed_dir / "orgs" / "unions.csv").read_text(encoding="utf-8")),
    }


# --- reading, within scope ---------------------------------------------------------------------


@dataclass(frozen=True)
class BodyFilter:
    prefecture_code: str | None = None
    kind: BodyKind | None = None
    population_min: int | None = None
    population_max: int | None = None
    text: str | None = None


SORTS = {
    "code": Body.code,
    "name": Body.name_kana,
    "population": Body.population,
    "-population": Body.population.desc(),
}


def scope_filter(stmt: Select, actor: Actor, permission: Permission) -> Select:
    """Limit a query over bodies (or rows joined to them) to what the actor may see."""
    reach = visible_prefecture(actor, permission)
    if reach is True:
        return stmt
    if reach is False:
        return stmt.where(Body.id < 0)
    if reach is None:
        return stmt.where(Body.id == actor.body.id)  # type: ignore[union-attr]
    return stmt.where(Body.prefecture_code == reach)


def list_bodies(
    session: Session, actor: Actor, flt: BodyFilter, sort: str = "code", page: int = 1, per_page: int = 50
) -> tuple[list[Body], int]:
    """Return one page of bodies the actor may see, and the total count."""
    stmt = scope_filter(select(Body), actor, Permission.BODY_VIEW)
    if flt.prefecture_code:
        stmt = stmt.where(Body.prefecture_code == flt.prefecture_code)
    if flt.kind:
        stmt = stmt.where(Body.kind == flt.kind)
    if flt.population_min is not None:
        stmt = stmt.where(Body.population >= flt.population_min)
    if flt.population_max is not None:
        stmt = stmt.where(Body.population < flt.population_max)
    if flt.text:
        # The user's text is literal: escape LIKE's wildcards rather than drop them (INP-03).
        text = flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{text}%"
        stmt = stmt.where(
            Body.name.like(like, escape="\\") | Body.code.like(like, escape="\\")
            | Body.name_kana.like(like, escape="\\")
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = SORTS.get(sort, Body.code)
    rows = session.scalars(stmt.order_by(order, Body.code).offset((page - 1) * per_page).limit(per_page))
    return list(rows), total


def get_body(session: Session, actor: Actor, code: str, permission: Permission = Permission.BODY_VIEW) -> Body:
    """Load one body the actor may see; others are reported as not found (existence is not disclosed)."""
    from pmo.accounts.service import body_ref
    from pmo.audit import service as audit

    body = session.scalar(select(Body).where(Body.code == code))
    if body is None:
        raise NotFound("団体が見つかりません。")
    if not can(actor, permission, body_ref(body)):
        audit.record(session, actor, "authz.denied", outcome="denied", target=body, target_body_code=body.code,
                     detail=str(permission))
        raise NotFound("団体が見つかりません。")
    return body


def prefectures(session: Session) -> list[Body]:
    return list(session.scalars(select(Body).where(Body.kind == BodyKind.PREFECTURE).order_by(Body.code)))


def ministries(session: Session) -> list[Ministry]:
    return list(session.scalars(select(Ministry).order_by(Ministry.id)))


def population_class(population: int | None) -> str:
    for low, high, label in POPULATION_CLASSES:
        if population is not None and population >= low and (high is None or population < high):
            return label
    return "不明"
