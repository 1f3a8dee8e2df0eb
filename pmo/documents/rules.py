"""Pure rules of the document library: when a document is live, who may see it, search tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pmo.accounts.permissions import Actor
from pmo.documents.models import Audience, DocumentKind, DocumentStatus

ALLOWED_KINDS = frozenset({"pdf", "xlsx", "docx", "pptx", "csv", "zip"})


@dataclass(frozen=True)
class DocFacts:
    kind: DocumentKind
    status: DocumentStatus
    audience: Audience
    ministry_id: int | None
    body_code: str | None
    publish_from: dt.datetime | None
    publish_until: dt.date | None


def is_live(facts: DocFacts, now: dt.datetime, today: dt.date) -> bool:
    """Published, past its scheduled start and not past its 掲載終了日."""
    if facts.status is not DocumentStatus.PUBLISHED:
        return False
    if facts.publish_from is not None and facts.publish_from > now:
        return False
    return facts.publish_until is None or facts.publish_until >= today


def actor_tokens(actor: Actor) -> frozenset[str]:
    """The audience tokens an actor carries into search and list queries."""
    tokens = set()
    if actor.is_national:
        tokens.add("ministries")
    if actor.ministry_id is not None:
        tokens.add(f"ministry:{actor.ministry_id}")
    if actor.body is not None:
        tokens.add("bodies")
        tokens.add(f"body:{actor.body.code}")
        if actor.body.is_prefecture:
            tokens.add("prefectures")
    return frozenset(tokens)


def audience_tokens(audience: Audience) -> frozenset[str]:
    """Who sees a live document of this audience."""
    if audience is Audience.ALL:
        return frozenset({"bodies", "ministries"})
    if audience is Audience.PREFECTURES:
        return frozenset({"prefectures", "ministries"})
    return frozenset({"ministries"})


def document_tokens(facts: DocFacts, now: dt.datetime, today: dt.date) -> frozenset[str]:
    """Who may see the document now: its audience when live, else only its owners."""
    if is_live(facts, now, today):
        return audience_tokens(facts.audience)
    owners: set[str] = set()
    if facts.ministry_id is not None:
        owners.add(f"ministry:{facts.ministry_id}")
    if facts.kind is DocumentKind.PRACTICE:
        if facts.body_code:
            owners.add(f"body:{facts.body_code}")
        if facts.status is DocumentStatus.PENDING:
            owners.add("ministries")  # any officer may approve 取組情報
    return frozenset(owners)


def can_see(actor: Actor, facts: DocFacts, now: dt.datetime, today: dt.date) -> bool:
    return bool(actor_tokens(actor) & document_tokens(facts, now, today))


def can_manage(actor: Actor, facts: DocFacts) -> bool:
    """Edit, add versions, publish: the owning ministry's officers (or the owning body for 取組情報)."""
    if facts.kind is DocumentKind.PRACTICE:
        return actor.body is not None and actor.body.code == facts.body_code and facts.status in (
            DocumentStatus.DRAFT, DocumentStatus.REJECTED, DocumentStatus.PENDING)
    return actor.ministry_id is not None and actor.ministry_id == facts.ministry_id


def parse_tags(text: str) -> str:
    """Normalise 「、」/「,」/spaces separated tags into a comma list (max 10, 30 chars each)."""
    import re
    import unicodedata

    parts = [p.strip() for p in re.split(r"[,、，\s]+", unicodedata.normalize("NFKC", text or ""))]
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part[:30])
    return ",".join(seen[:10])
