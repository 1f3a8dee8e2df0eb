"""FAQ and inquiry use cases: FAQs (sanitised rich text, related documents, votes), inquiries to the
ministry in charge, answers, and turning an answer into a FAQ."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from pmo.accounts.permissions import Actor, Permission, can
from pmo.audit import service as audit
from pmo.core import clock, my_number
from pmo.core.errors import Conflict, NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.faq import rules
from pmo.faq.models import CATEGORIES, Faq, FaqDocument, FaqStatus, FaqVote, Inquiry, InquiryStatus
from pmo.orgs.models import Ministry
from pmo.search import service as search

FAQ_FIELDS = ("category", "question", "answer_html", "status", "source")
DEFAULT_REPLY_DAYS = 14


@dataclass(frozen=True)
class FaqInput:
    question: str
    answer_html: str
    category: str = "その他"
    source: str = ""
    related_document_ids: tuple[int, ...] = ()


def _check_faq(data: FaqInput) -> None:
    problems = []
    if not data.question.strip():
        problems.append(Problem("question", "質問を入力してください。"))
    if not rules.html_to_text(rules.sanitize_html(data.answer_html)):
        problems.append(Problem("answer_html", "回答を入力してください。"))
    if data.category not in CATEGORIES:
        problems.append(Problem("category", "分類を一覧から選択してください。"))
    problems += my_number.problems_in(  # OPT-01: also for the CLI import
        {"question": data.question, "answer_html": rules.html_to_text(data.answer_html), "source": data.source},
        {"question": "質問", "answer_html": "回答", "source": "出典"})
    if problems:
        raise ValidationFailed(problems)


def _require_manage(actor: Actor, ministry_id: int | None = None) -> None:
    if not can(actor, Permission.FAQ_MANAGE, ministry_id=ministry_id):
        raise PermissionDenied("FAQを編集する権限がありません（登録した府省のみ編集できます）。")


def _set_related(session: Session, faq: Faq, doc_ids: tuple[int, ...]) -> None:
    from pmo.documents.models import Document

    known = set(session.scalars(select(Document.id).where(Document.id.in_(doc_ids)))) if doc_ids else set()
    faq.related = [FaqDocument(document_id=d) for d in dict.fromkeys(doc_ids) if d in known]


def create_faq(session: Session, actor: Actor, data: FaqInput, publish: bool = False,
               ministry_id: int | None = None, seed_key: str | None = None, source_inquiry_id: int | None = None) -> Faq:
    """Add a FAQ (draft unless ``publish``); the answer HTML is sanitised before it is stored."""
    ministry_id = ministry_id if ministry_id is not None else actor.ministry_id
    _require_manage(actor, ministry_id)
    _check_faq(data)
    now = clock.now()
    faq = Faq(category=data.category, question=data.question.strip(), answer_html=rules.sanitize_html(data.answer_html),
              source=data.source.strip(), status=FaqStatus.PUBLISHED if publish else FaqStatus.DRAFT,
              ministry_id=ministry_id, created_dt=now, updated_dt=now, published_dt=now if publish else None,
              seed_key=seed_key, source_inquiry_id=source_inquiry_id)
    session.add(faq)
    _set_related(session, faq, data.related_document_ids)
    session.flush()
    audit.record(session, actor, "faq.created", target=faq, after=audit.snapshot(faq, FAQ_FIELDS))
    search.enqueue(session, "faq", faq.id)
    return faq


def update_faq(session: Session, actor: Actor, faq_id: int, data: FaqInput, expected_version: int,
               publish: bool | None = None) -> Faq:
    faq = get_faq(session, actor, faq_id)
    _require_manage(actor, faq.ministry_id)
    if faq.version != expected_version:
        raise Conflict("他のユーザーがこのFAQを更新しました。画面を再読み込みしてください。")
    _check_faq(data)
    before = audit.snapshot(faq, FAQ_FIELDS)
    faq.category, faq.question, faq.source = data.category, data.question.strip(), data.source.strip()
    faq.answer_html = rules.sanitize_html(data.answer_html)
    if publish is not None:
        faq.status = FaqStatus.PUBLISHED if publish else FaqStatus.DRAFT
        if publish and faq.published_dt is None:
            faq.published_dt = clock.now()
    _set_related(session, faq, data.related_document_ids)
    faq.updated_dt = clock.now()
    session.flush()
    old, new = audit.changes(before, audit.snapshot(faq, FAQ_FIELDS))
    audit.record(session, actor, "faq.updated", target=faq, before=old, after=new)
    search.enqueue(session, "faq", faq.id)
    return faq


def get_faq(session: Session, actor: Actor, faq_id: int) -> Faq:
    """A published FAQ, or a draft for the managing officers."""
    faq = session.get(Faq, faq_id)
    if faq is None or (faq.status is not FaqStatus.PUBLISHED and not can(actor, Permission.FAQ_MANAGE)):
        raise NotFound("FAQが見つかりません。")
    return faq


FAQ_PAGE_SIZE = 20


def list_faqs(session: Session, actor: Actor, category: str | None = None, text: str | None = None,
              include_drafts: bool = False, page: int = 1, per_page: int = FAQ_PAGE_SIZE) -> tuple[list[Faq], int]:
    """Return one page of FAQs in category order, then by id, and how many match in all.

    Paged in SQL: every answer on the list is rendered in full, so the page size bounds the cost.
    """
    stmt = select(Faq)
    if not (include_drafts and can(actor, Permission.FAQ_MANAGE)):
        stmt = stmt.where(Faq.status == FaqStatus.PUBLISHED)
    if category:
        stmt = stmt.where(Faq.category == category)
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Faq.question.like(like), Faq.answer_html.like(like)))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = case({c: i for i, c in enumerate(CATEGORIES)}, value=Faq.category, else_=len(CATEGORIES))
    faqs = session.scalars(stmt.options(selectinload(Faq.related), selectinload(Faq.ministry))
                           .order_by(order, Faq.id).limit(per_page).offset((max(page, 1) - 1) * per_page))
    return list(faqs), total


def category_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Faq.category, func.count()).where(Faq.status == FaqStatus.PUBLISHED)
                           .group_by(Faq.category))
    counts = dict(rows.all())
    return {c: counts.get(c, 0) for c in CATEGORIES}


def vote_helpful(session: Session, actor: Actor, faq_id: int) -> bool:
    """Count one 「役に立った」 per user; return False if the user had already voted."""
    faq = get_faq(session, actor, faq_id)
    exists = session.scalar(select(FaqVote.id).where(FaqVote.faq_id == faq.id, FaqVote.user_id == actor.user_id))
    if exists:
        return False
    try:
        with session.begin_nested():
            session.add(FaqVote(faq_id=faq.id, user_id=actor.user_id, voted_dt=clock.now()))
    except IntegrityError:
        return False
    # A table-level UPDATE: a vote must not bump the version an editing officer holds.
    table = Faq.__table__
    session.execute(update(table).where(table.c.id == faq.id).values(helpful_count=table.c.helpful_count + 1))
    session.expire(faq, ["helpful_count"])
    return True


def voted(session: Session, actor: Actor, faq_ids: list[int]) -> set[int]:
    if not faq_ids:
        return set()
    return set(session.scalars(select(FaqVote.faq_id).where(FaqVote.user_id == actor.user_id,
                                                             FaqVote.faq_id.in_(faq_ids))))


def suggest(session: Session, text: str, limit: int = 5) -> list[tuple[Faq, float]]:
    """Published FAQs that look like ``text`` (while an inquiry is being typed)."""
    if len((text or "").strip()) < 2:
        return []
    faqs = session.scalars(select(Faq).where(Faq.status == FaqStatus.PUBLISHED))
    scored = [(f, rules.similarity(text, f.question + " " + rules.html_to_text(f.answer_html)[:400]))
              for f in faqs]
    scored = [(f, s) for f, s in scored if s >= 0.3]
    scored.sort(key=lambda fs: (-fs[1], fs[0].id))
    return scored[:limit]


# --- inquiries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InquiryInput:
    subject: str
    question: str
    category: str
    ministry_id: int


def ask(session: Session, actor: Actor, data: InquiryInput, reply_days: int = DEFAULT_REPLY_DAYS) -> Inquiry:
    """A body sends a question to the ministry in charge, with a reply deadline."""
    if actor.body is None or not can(actor, Permission.INQUIRY_ASK, body=actor.body):
        raise PermissionDenied("問い合わせを送る権限がありません。")
    problems = []
    if not data.subject.strip():
        problems.append(Problem("subject", "件名を入力してください。"))
    if len(data.question.strip()) < 5:
        problems.append(Problem("question", "質問の内容を入力してください。"))
    if data.category not in CATEGORIES:
        problems.append(Problem("category", "分類を一覧から選択してください。"))
    if session.get(Ministry, data.ministry_id) is None:
        problems.append(Problem("ministry_id", "宛先の府省を選択してください。"))
    problems += my_number.problems_in({"subject": data.subject, "question": data.question},
                                      {"subject": "件名", "question": "質問の内容"})
    if problems:
        raise ValidationFailed(problems)
    now = clock.now()
    inquiry = Inquiry(body_id=actor.body.id, asker_id=actor.user_id, ministry_id=data.ministry_id,
                      category=data.category, subject=data.subject.strip(), question=data.question.strip(),
                      status=InquiryStatus.OPEN, asked_dt=now, due_date=rules.reply_due(clock.today(), reply_days))
    session.add(inquiry)
    session.flush()
    audit.record(session, actor, "inquiry.asked", target=inquiry, target_body_code=actor.body.code,
                 after={"subject": inquiry.subject, "ministry_id": inquiry.ministry_id})
    return inquiry


def get_inquiry(session: Session, actor: Actor, inquiry_id: int) -> Inquiry:
    """The asker's body sees its inquiries; officers see all; others get NotFound."""
    inquiry = session.get(Inquiry, inquiry_id)
    if inquiry is None:
        raise NotFound("問い合わせが見つかりません。")
    if can(actor, Permission.INQUIRY_ANSWER):
        return inquiry
    if actor.body is not None and actor.body.id == inquiry.body_id:
        return inquiry
    audit.record(session, actor, "authz.denied", outcome="denied", target=inquiry, detail="inquiry.read",
                 target_body_code=inquiry.body.code)
    raise NotFound("問い合わせが見つかりません。")


def list_inquiries(session: Session, actor: Actor, status: InquiryStatus | None = None,
                   mine_only: bool = False) -> list[Inquiry]:
    stmt = select(Inquiry).options(selectinload(Inquiry.body), selectinload(Inquiry.ministry))
    if can(actor, Permission.INQUIRY_ANSWER) and not mine_only:
        pass
    elif actor.body is not None:
        stmt = stmt.where(Inquiry.body_id == actor.body.id)
    else:
        return []
    if status is not None:
        stmt = stmt.where(Inquiry.status == status)
    return list(session.scalars(stmt.order_by(Inquiry.asked_dt.desc(), Inquiry.id.desc())))


def unanswered_by_age(session: Session, actor: Actor) -> list[tuple[str, list[Inquiry]]]:
    """Open inquiries grouped by age band, oldest first (for the officers' worklist)."""
    if not can(actor, Permission.INQUIRY_ANSWER):
        return []
    today = clock.today()
    rows = session.scalars(select(Inquiry).where(Inquiry.status == InquiryStatus.OPEN)
                           .options(selectinload(Inquiry.body), selectinload(Inquiry.ministry))
                           .order_by(Inquiry.asked_dt))
    bands: dict[str, list[Inquiry]] = {b: [] for b in ("1か月超", "1か月以内", "2週間以内", "1週間以内")}
    for inquiry in rows:
        moment = inquiry.asked_dt if inquiry.asked_dt.tzinfo else inquiry.asked_dt.replace(tzinfo=dt.UTC)
        asked = moment.astimezone(clock.JST).date()
        bands[rules.age_band(asked, today)].append(inquiry)
    return [(band, items) for band, items in bands.items() if items]


def answer(session: Session, actor: Actor, inquiry_id: int, text: str, expected_version: int) -> Inquiry:
    """An officer answers; the asker's body sees the answer at once."""
    if not can(actor, Permission.INQUIRY_ANSWER):
        raise PermissionDenied("問い合わせに回答する権限がありません。")
    inquiry = get_inquiry(session, actor, inquiry_id)
    if inquiry.version != expected_version:
        raise Conflict("他の担当者がこの問い合わせを更新しました。画面を再読み込みしてください。")
    if not text.strip():
        raise ValidationFailed([Problem("answer", "回答を入力してください。")])
    before = {"status": inquiry.status.value, "answer": inquiry.answer}
    inquiry.answer = text.strip()
    inquiry.status = InquiryStatus.ANSWERED
    inquiry.answered_by_id = actor.user_id
    inquiry.answered_dt = clock.now()
    session.flush()
    audit.record(session, actor, "inquiry.answered", target=inquiry, target_body_code=inquiry.body.code,
                 before=before, after={"status": inquiry.status.value, "answer": inquiry.answer})
    search.enqueue(session, "inquiry", inquiry.id)
    return inquiry


def faq_draft_from(session: Session, actor: Actor, inquiry_id: int) -> FaqInput:
    """Prefill a FAQ from an answered inquiry, with the body's and asker's names removed."""
    inquiry = get_inquiry(session, actor, inquiry_id)
    names = [inquiry.body.name, inquiry.body.full_name, inquiry.asker.display_name if inquiry.asker else ""]
    return FaqInput(question=rules.anonymise(inquiry.question, names),
                    answer_html=rules.text_to_html(rules.anonymise(inquiry.answer or "", names)),
                    category=inquiry.category)


def publish_as_faq(session: Session, actor: Actor, inquiry_id: int, data: FaqInput, expected_version: int) -> Faq:
    """One step: the edited, anonymised answer becomes an approved, published FAQ."""
    inquiry = get_inquiry(session, actor, inquiry_id)
    if inquiry.status is not InquiryStatus.ANSWERED:
        raise ValidationFailed([Problem("status", "回答済みの問い合わせだけをFAQにできます。")])
    if inquiry.faq_id is not None:
        raise ValidationFailed([Problem("status", "この問い合わせは既にFAQになっています。")])
    if inquiry.version != expected_version:
        raise Conflict("他の担当者がこの問い合わせを更新しました。画面を再読み込みしてください。")
    faq = create_faq(session, actor, data, publish=True, source_inquiry_id=inquiry.id)
    inquiry.faq_id = faq.id
    session.flush()
    audit.record(session, actor, "inquiry.published_as_faq", target=inquiry, target_body_code=inquiry.body.code,
                 after={"faq_id": faq.id})
    return faq


# --- search ---------------------------------------------------------------------------------------


def _fy(moment: dt.datetime | None) -> int | None:
    if moment is None:
        return None
    from pmo.core.dates import fiscal_year

    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return fiscal_year(aware.astimezone(clock.JST).date())


def search_doc(session: Session, faq_id: int) -> Any:
    from pmo.search.engine import SearchDoc

    faq = session.get(Faq, faq_id)
    if faq is None:
        return None
    tokens = {"bodies", "ministries"} if faq.status is FaqStatus.PUBLISHED else (
        {f"ministry:{faq.ministry_id}"} if faq.ministry_id else {"ministries"})
    answer_text = rules.html_to_text(faq.answer_html)
    return SearchDoc(key=f"faq:{faq.id}", kind="faq", id=faq.id, title=faq.question, body=answer_text,
                     summary=answer_text[:200], url=f"/faq/{faq.id}", field=None,
                     ministry=faq.ministry.name if faq.ministry else None, fiscal_year=_fy(faq.published_dt or faq.created_dt),
                     visibility=frozenset(tokens))


def all_ids(session: Session) -> Iterator[int]:
    yield from session.scalars(select(Faq.id).order_by(Faq.id))


def inquiry_search_doc(session: Session, inquiry_id: int) -> Any:
    """Answered inquiries are searchable by the asking body and by ministries."""
    from pmo.search.engine import SearchDoc

    inquiry = session.get(Inquiry, inquiry_id)
    if inquiry is None or inquiry.status is not InquiryStatus.ANSWERED:
        return None
    return SearchDoc(key=f"inquiry:{inquiry.id}", kind="inquiry", id=inquiry.id, title=inquiry.subject,
                     body=inquiry.question + "\n" + (inquiry.answer or ""), summary=(inquiry.answer or "")[:200],
                     url=f"/faq/inquiries/{inquiry.id}", ministry=inquiry.ministry.name,
                     fiscal_year=_fy(inquiry.asked_dt),
                     visibility=frozenset({"ministries", f"body:{inquiry.body.code}"}))


def all_inquiry_ids(session: Session) -> Iterator[int]:
    yield from session.scalars(select(Inquiry.id).where(Inquiry.status == InquiryStatus.ANSWERED).order_by(Inquiry.id))


def seed_faqs(session: Session, seed_dir: Any) -> dict[str, int]:
    """Load seed/faq/faqs.json: FAQs written from the source document, each citing its slide (idempotent)."""
    import json

    from pmo.accounts.models import Role

    items = json.loads((seed_dir / "faq" / "faqs.json").read_text(encoding="utf-8"))
    ministry_ids = {m.code: m.id for m in session.scalars(select(Ministry))}
    existing = {f.seed_key: f for f in session.scalars(select(Faq).where(Faq.seed_key.is_not(None)))}
    created = updated = 0
    for item in items:
        ministry_id = ministry_ids.get(item.get("ministry") or "mhlw")
        actor = Actor(user_id=0, login_id="seed", role=Role.MINISTRY_OFFICER, ministry_id=ministry_id)
        data = FaqInput(question=item["question"], answer_html=rules.text_to_html(item["answer"]),
                        category=item["category"], source=item["source"])
        faq = existing.get(item["key"])
        if faq is None:
            create_faq(session, actor, data, publish=True, ministry_id=ministry_id, seed_key=item["key"])
            created += 1
        elif (faq.question, faq.answer_html, faq.category, faq.source) != (
                data.question, rules.sanitize_html(data.answer_html), data.category, data.source):
            update_faq(session, actor, faq.id, data, faq.version)
            updated += 1
    return {"created": created, "updated": updated}
