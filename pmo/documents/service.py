"""Document use cases: create, version, publish, approve 取組情報, read marks, subscriptions.

Every write queues the document for the search index in the same transaction (search outbox).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from pmo.accounts.models import User
from pmo.accounts.permissions import Actor, Permission, can
from pmo.audit import service as audit
from pmo.core import clock, my_number
from pmo.core.errors import Conflict, NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.core.files import UploadRejected, extract_text, inspect_upload
from pmo.documents import rules
from pmo.documents.models import (
    Audience,
    Document,
    DocumentKind,
    DocumentRead,
    DocumentStatus,
    DocumentVersion,
    Field,
    Subscription,
)
from pmo.documents.storage import FileStore
from pmo.orgs.models import Ministry
from pmo.search import service as search

AUDIT_FIELDS = ("title", "summary", "field", "tags", "audience", "status", "publish_from_dt", "publish_until")
DEFAULT_MAX_BYTES = 30 * 1024 * 1024


@dataclass(frozen=True)
class DocumentInput:
    title: str
    summary: str = ""
    field: Field = Field.COMMON
    tags: str = ""
    audience: Audience = Audience.ALL
    publish_from: dt.datetime | None = None
    publish_until: dt.date | None = None


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive UTC datetimes; make them comparable with ``clock.now()``."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


def facts(doc: Document) -> rules.DocFacts:
    return rules.DocFacts(doc.kind, doc.status, doc.audience, doc.ministry_id,
                          doc.body.code if doc.body is not None else None, aware(doc.publish_from_dt),
                          doc.publish_until)


def _check_input(data: DocumentInput) -> None:
    problems = []
    if not data.title.strip():
        problems.append(Problem("title", "タイトルを入力してください。"))
    if len(data.title) > 200:
        problems.append(Problem("title", "タイトルは200文字以内で入力してください。"))
    if data.publish_from and data.publish_until and data.publish_until < data.publish_from.date():
        problems.append(Problem("publish_until", "掲載終了日は公開開始日より後の日付にしてください。"))
    problems += my_number.problems_in(  # OPT-01: also for the CLI import
        {"title": data.title, "summary": data.summary, "tags": data.tags}, {"title": "タイトル", "summary": "概要", "tags": "タグ"})
    if problems:
        raise ValidationFailed(problems)


def _inspect(upload: Upload, max_bytes: int) -> tuple[object, str]:
    try:
        info = inspect_upload(upload.data, upload.filename, rules.ALLOWED_KINDS, max_bytes)
    except UploadRejected as exc:
        raise ValidationFailed([Problem("file", exc.message)]) from exc
    return info, extract_text(upload.data, info.kind)


def _new_version(session: Session, actor: Actor, doc: Document, upload: Upload, note: str, store: FileStore,
                 max_bytes: int) -> DocumentVersion:
    info, text = _inspect(upload, max_bytes)
    number = (max((v.number for v in doc.versions), default=0)) + 1
    version = DocumentVersion(
        number=number, storage_key=store.put(upload.data), display_name=info.display_name,  # type: ignore[attr-defined]
        file_kind=info.kind, mime_type=info.mime_type, size=info.size, sha256=info.sha256,  # type: ignore[attr-defined]
        change_note=note.strip(), text=text, uploaded_by_id=actor.user_id or None, uploaded_dt=clock.now(),
    )
    doc.versions.insert(0, version)
    return version


def create_document(session: Session, actor: Actor, data: DocumentInput, upload: Upload, store: FileStore,
                    ministry_id: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Create a ministry document as a draft with its first file (version 1)."""
    ministry_id = ministry_id if ministry_id is not None else actor.ministry_id
    if ministry_id is None or not can(actor, Permission.DOCUMENT_PUBLISH, ministry_id=ministry_id):
        raise PermissionDenied("文書を登録する権限がありません。")
    _check_input(data)
    now = clock.now()
    doc = Document(kind=DocumentKind.NOTICE, title=data.title.strip(), summary=data.summary.strip(), field=data.field,
                   tags=rules.parse_tags(data.tags), audience=data.audience, status=DocumentStatus.DRAFT,
                   ministry_id=ministry_id, publish_from_dt=data.publish_from, publish_until=data.publish_until,
                   created_by_id=actor.user_id or None, created_dt=now, updated_dt=now)
    session.add(doc)
    _new_version(session, actor, doc, upload, "初版", store, max_bytes)
    session.flush()
    audit.record(session, actor, "document.created", target=doc, after=audit.snapshot(doc, AUDIT_FIELDS))
    search.enqueue(session, "document", doc.id)
    return doc


def submit_practice(session: Session, actor: Actor, data: DocumentInput, upload: Upload, store: FileStore,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Register a body's own 取組情報; it waits for a ministry officer's approval."""
    if actor.body is None or not can(actor, Permission.PRACTICE_SUBMIT, body=actor.body):
        raise PermissionDenied("取組情報を登録する権限がありません。")
    _check_input(data)
    now = clock.now()
    doc = Document(kind=DocumentKind.PRACTICE, title=data.title.strip(), summary=data.summary.strip(),
                   field=data.field, tags=rules.parse_tags(data.tags), audience=Audience.ALL,
                   status=DocumentStatus.PENDING, body_id=actor.body.id, created_by_id=actor.user_id,
                   created_dt=now, updated_dt=now)
    session.add(doc)
    _new_version(session, actor, doc, upload, "初版", store, max_bytes)
    session.flush()
    audit.record(session, actor, "document.practice_submitted", target=doc, target_body_code=actor.body.code,
                 after=audit.snapshot(doc, AUDIT_FIELDS))
    search.enqueue(session, "document", doc.id)
    return doc


def get_document(session: Session, actor: Actor, doc_id: int) -> Document:
    """Return a document the actor may see; anything else is NotFound (and denied reads are audited)."""
    doc = session.get(Document, doc_id)
    if doc is None:
        raise NotFound("文書が見つかりません。")
    if not rules.can_see(actor, facts(doc), clock.now(), clock.today()):
        audit.record(session, actor, "authz.denied", outcome="denied", target=doc, detail="document.read")
        raise NotFound("文書が見つかりません。")
    return doc


def get_version(session: Session, actor: Actor, doc_id: int, number: int) -> tuple[Document, DocumentVersion]:
    """Return a version of a visible document (the parent's permission is checked on every download)."""
    doc = get_document(session, actor, doc_id)
    version = next((v for v in doc.versions if v.number == number), None)
    if version is None:
        raise NotFound("ファイルが見つかりません。")
    return doc, version


def _managed(session: Session, actor: Actor, doc_id: int, expected_version: int | None) -> Document:
    doc = get_document(session, actor, doc_id)
    if not rules.can_manage(actor, facts(doc)):
        raise PermissionDenied("この文書を編集する権限がありません（登録した府省・団体のみ編集できます）。")
    if expected_version is not None and doc.version != expected_version:
        raise Conflict("他のユーザーがこの文書を更新しました。画面を再読み込みして最新の内容を確認してください。")
    return doc


def update_document(session: Session, actor: Actor, doc_id: int, data: DocumentInput, expected_version: int) -> Document:
    """Change a document's properties (not its file)."""
    doc = _managed(session, actor, doc_id, expected_version)
    _check_input(data)
    before = audit.snapshot(doc, AUDIT_FIELDS)
    doc.title, doc.summary, doc.field = data.title.strip(), data.summary.strip(), data.field
    doc.tags = rules.parse_tags(data.tags)
    if doc.kind is DocumentKind.NOTICE:
        doc.audience, doc.publish_from_dt, doc.publish_until = data.audience, data.publish_from, data.publish_until
    doc.updated_dt = clock.now()
    session.flush()
    old, new = audit.changes(before, audit.snapshot(doc, AUDIT_FIELDS))
    audit.record(session, actor, "document.updated", target=doc, before=old, after=new)
    search.enqueue(session, "document", doc.id)
    return doc


def add_version(session: Session, actor: Actor, doc_id: int, upload: Upload, change_note: str, store: FileStore,
                expected_version: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> DocumentVersion:
    """Upload a new file for a document; it becomes the 最新版, older files stay downloadable."""
    doc = _managed(session, actor, doc_id, expected_version)
    if not change_note.strip():
        raise ValidationFailed([Problem("change_note", "変更内容を入力してください。")])
    version = _new_version(session, actor, doc, upload, change_note, store, max_bytes)
    doc.updated_dt = clock.now()
    session.flush()
    audit.record(session, actor, "document.version_added", target=doc,
                 after={"number": version.number, "sha256": version.sha256, "name": version.display_name})
    search.enqueue(session, "document", doc.id)
    return version


def publish_document(session: Session, actor: Actor, doc_id: int, expected_version: int | None = None) -> Document:
    """Publish a ministry document (now, or at its scheduled time)."""
    doc = _managed(session, actor, doc_id, expected_version)
    if doc.kind is not DocumentKind.NOTICE:
        raise PermissionDenied("取組情報は府省担当官の承認で公開されます。")
    before = audit.snapshot(doc, AUDIT_FIELDS)
    doc.status = DocumentStatus.PUBLISHED
    doc.published_dt = doc.published_dt or clock.now()
    doc.updated_dt = clock.now()
    session.flush()
    audit.record(session, actor, "document.published", target=doc, before=before, after=audit.snapshot(doc, AUDIT_FIELDS))
    search.enqueue(session, "document", doc.id)
    return doc


def withdraw_document(session: Session, actor: Actor, doc_id: int, expected_version: int | None = None) -> Document:
    """Stop showing a published document; downloads stop at once for readers."""
    doc = _managed(session, actor, doc_id, expected_version)
    before = audit.snapshot(doc, AUDIT_FIELDS)
    doc.status = DocumentStatus.WITHDRAWN
    doc.updated_dt = clock.now()
    session.flush()
    audit.record(session, actor, "document.withdrawn", target=doc, before=before, after=audit.snapshot(doc, AUDIT_FIELDS))
    search.enqueue(session, "document", doc.id)
    return doc


def review_practice(session: Session, actor: Actor, doc_id: int, approve: bool, note: str = "") -> Document:
    """A ministry officer approves (publishes) or sends back a body's 取組情報."""
    if not can(actor, Permission.PRACTICE_APPROVE):
        raise PermissionDenied("取組情報を承認する権限がありません。")
    doc = get_document(session, actor, doc_id)
    if doc.kind is not DocumentKind.PRACTICE or doc.status is not DocumentStatus.PENDING:
        raise ValidationFailed([Problem("status", "承認待ちの取組情報ではありません。")])
    if not approve and not note.strip():
        raise ValidationFailed([Problem("note", "差戻しの理由を入力してください。")])
    before = audit.snapshot(doc, AUDIT_FIELDS)
    doc.status = DocumentStatus.PUBLISHED if approve else DocumentStatus.REJECTED
    doc.review_note = note.strip() or None
    doc.approved_by_id = actor.user_id if approve else None
    doc.published_dt = clock.now() if approve else None
    doc.updated_dt = clock.now()
    session.flush()
    audit.record(session, actor, "document.practice_approved" if approve else "document.practice_rejected",
                 target=doc, target_body_code=doc.body.code if doc.body else None, before=before,
                 after=audit.snapshot(doc, AUDIT_FIELDS))
    search.enqueue(session, "document", doc.id)
    return doc


# --- lists ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentFilter:
    field: Field | None = None
    ministry_id: int | None = None
    kind: DocumentKind | None = None
    text: str | None = None
    status: DocumentStatus | None = None  # only for managers


def _live_clause(now: dt.datetime, today: dt.date):
    return and_(
        Document.status == DocumentStatus.PUBLISHED,
        or_(Document.publish_from_dt.is_(None), Document.publish_from_dt <= now),
        or_(Document.publish_until.is_(None), Document.publish_until >= today),
    )


def visible_clause(actor: Actor, now: dt.datetime, today: dt.date):
    """SQL version of ``rules.can_see`` for list queries."""
    tokens = rules.actor_tokens(actor)
    audiences = [a for a in Audience if rules.audience_tokens(a) & tokens]
    live = and_(_live_clause(now, today), Document.audience.in_(audiences))
    owned = []
    if actor.ministry_id is not None:
        owned.append(Document.ministry_id == actor.ministry_id)
    if actor.body is not None:
        owned.append(Document.body_id == actor.body.id)
    if "ministries" in tokens:
        owned.append(and_(Document.kind == DocumentKind.PRACTICE, Document.status == DocumentStatus.PENDING))
    return or_(live, *owned)


def list_documents(session: Session, actor: Actor, flt: DocumentFilter, page: int = 1,
                   per_page: int = 50) -> tuple[list[Document], int]:
    """Documents the actor may see, newest first."""
    stmt = select(Document).where(visible_clause(actor, clock.now(), clock.today()))
    if flt.field:
        stmt = stmt.where(Document.field == flt.field)
    if flt.ministry_id:
        stmt = stmt.where(Document.ministry_id == flt.ministry_id)
    if flt.kind:
        stmt = stmt.where(Document.kind == flt.kind)
    if flt.status:
        stmt = stmt.where(Document.status == flt.status)
    if flt.text:
        cleaned = flt.text.replace("\\", "").replace("%", "").replace("_", "")
        like = f"%{cleaned}%"
        stmt = stmt.where(or_(Document.title.like(like), Document.summary.like(like), Document.tags.like(like)))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.options(selectinload(Document.versions), selectinload(Document.ministry), selectinload(Document.body))
        .order_by(Document.updated_dt.desc(), Document.id.desc())
        .offset((max(page, 1) - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), total


def pending_practices(session: Session, actor: Actor) -> list[Document]:
    if not can(actor, Permission.PRACTICE_APPROVE):
        return []
    return list(session.scalars(select(Document).where(
        Document.kind == DocumentKind.PRACTICE, Document.status == DocumentStatus.PENDING).order_by(Document.id)))


# --- reading marks and subscriptions --------------------------------------------------------------


def read_versions(session: Session, actor: Actor, doc_ids: list[int]) -> dict[int, int]:
    """Return {document id: highest version number the user has opened}."""
    if not doc_ids:
        return {}
    rows = session.execute(select(DocumentRead.document_id, DocumentRead.version_number).where(
        DocumentRead.user_id == actor.user_id, DocumentRead.document_id.in_(doc_ids)))
    return {doc_id: number for doc_id, number in rows}


def is_unread(doc: Document, reads: dict[int, int]) -> bool:
    latest = doc.latest
    return latest is not None and reads.get(doc.id, 0) < latest.number


def mark_read(session: Session, actor: Actor, doc: Document, number: int | None = None) -> None:
    """Remember that the user opened the document at ``number`` (default: the newest)."""
    number = number or (doc.latest.number if doc.latest else 0)
    row = session.scalar(select(DocumentRead).where(DocumentRead.user_id == actor.user_id,
                                                     DocumentRead.document_id == doc.id))
    if row is None:
        session.add(DocumentRead(user_id=actor.user_id, document_id=doc.id, version_number=number,
                                 read_dt=clock.now()))
    elif row.version_number < number:
        row.version_number, row.read_dt = number, clock.now()
    session.flush()


def subscriptions(session: Session, actor: Actor) -> list[Subscription]:
    return list(session.scalars(select(Subscription).where(Subscription.user_id == actor.user_id)
                                .order_by(Subscription.id)))


def set_subscriptions(session: Session, actor: Actor, fields: list[Field], ministry_ids: list[int]) -> None:
    """Replace the user's subscriptions with these 分野 and 府省."""
    for row in subscriptions(session, actor):
        session.delete(row)
    session.flush()
    now = clock.now()
    for f in dict.fromkeys(fields):
        session.add(Subscription(user_id=actor.user_id, field=f, created_dt=now))
    known = set(session.scalars(select(Ministry.id).where(Ministry.id.in_(ministry_ids))))
    for mid in dict.fromkeys(ministry_ids):
        if mid in known:
            session.add(Subscription(user_id=actor.user_id, ministry_id=mid, created_dt=now))
    session.flush()
    audit.record(session, actor, "document.subscriptions_set",
                 after={"fields": [f.value for f in fields], "ministries": sorted(known)})


def feed(session: Session, actor: Actor, limit: int = 10) -> tuple[list[Document], dict[int, int], bool]:
    """New and updated documents for the home page: subscribed ones, or all when none is set."""
    subs = subscriptions(session, actor)
    stmt = select(Document).where(visible_clause(actor, clock.now(), clock.today()),
                                  Document.status == DocumentStatus.PUBLISHED)
    if subs:
        fields = [s.field for s in subs if s.field is not None]
        ministry_ids = [s.ministry_id for s in subs if s.ministry_id is not None]
        stmt = stmt.where(or_(Document.field.in_(fields), Document.ministry_id.in_(ministry_ids)))
    docs = list(session.scalars(stmt.options(selectinload(Document.versions))
                                .order_by(Document.updated_dt.desc(), Document.id.desc()).limit(limit)))
    return docs, read_versions(session, actor, [d.id for d in docs]), bool(subs)


def subscribers(session: Session, doc: Document) -> list[User]:
    """Active users following the document's 分野 or 府省 who may see it."""
    cond = [Subscription.field == doc.field]
    if doc.ministry_id is not None:
        cond.append(Subscription.ministry_id == doc.ministry_id)
    users = session.scalars(select(User).join(Subscription, Subscription.user_id == User.id)
                            .where(or_(*cond), User.is_active.is_(True)).distinct())
    from pmo.accounts.service import actor_for

    now, today = clock.now(), clock.today()
    return [u for u in users if rules.can_see(actor_for(u), facts(doc), now, today)]


# --- search ---------------------------------------------------------------------------------------


def search_doc(session: Session, doc_id: int):
    """Flatten a document for the index (None: delete it from the index)."""
    from pmo.search.engine import SearchDoc

    doc = session.get(Document, doc_id)
    if doc is None:
        return None
    now, today = clock.now(), clock.today()
    tokens = rules.document_tokens(facts(doc), now, today)
    # A table-level UPDATE: indexing is bookkeeping and must not bump the record's edit version.
    session.execute(update(Document.__table__).where(Document.__table__.c.id == doc.id).values(indexed_dt=now))
    if not tokens:
        return None
    latest = doc.latest
    text = latest.text if latest is not None else ""
    year = None
    stamp = doc.published_dt or doc.created_dt
    if stamp is not None:
        from pmo.core.dates import fiscal_year

        year = fiscal_year(stamp.astimezone(clock.JST).date())
    return SearchDoc(
        key=f"document:{doc.id}", kind="document", id=doc.id, title=doc.title,
        body="\n".join([doc.summary, " ".join(doc.tag_list), text or ""]), summary=doc.summary[:300],
        url=f"/documents/{doc.id}", field=doc.field.label, ministry=doc.owner_label or None, fiscal_year=year,
        visibility=tokens,
    )


def all_ids(session: Session) -> Iterator[int]:
    yield from session.scalars(select(Document.id).order_by(Document.id))


def due_for_reindex(session: Session) -> list[int]:
    """Documents whose scheduled start or 掲載終了日 passed since they were last indexed."""
    now, today = clock.now(), clock.today()
    due = []
    rows = session.scalars(select(Document).where(
        Document.status == DocumentStatus.PUBLISHED,
        or_(Document.publish_from_dt.is_not(None), Document.publish_until.is_not(None))))
    for doc in rows:
        seen, start = aware(doc.indexed_dt), aware(doc.publish_from_dt)
        if start is not None and start <= now and (seen is None or seen < start) or doc.publish_until is not None and doc.publish_until < today and (
                seen is None or seen.astimezone(clock.JST).date() <= doc.publish_until):
            due.append(doc.id)
    return due


# --- seed and demo --------------------------------------------------------------------------------

SOURCE_TITLE = "地方公共団体（社会保障分野）における社会保障・税番号制度の導入に向けた対応について（平成27年度 社会保障・税番号制度担当者説明会資料6）"
SOURCE_FILE = "documents/mhlw_2015_setsumeikai_shiryo6.txt"


def text_to_docx(text: str) -> bytes:
    """Wrap plain text in a .docx (the source deck is plain text; .txt is not an allowed upload kind)."""
    import io
    import re

    from docx import Document as Docx

    out = Docx()
    for line in text.splitlines():
        clean = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", line).strip()
        if clean:
            out.add_paragraph(clean)
    buffer = io.BytesIO()
    out.save(buffer)
    return buffer.getvalue()


def seed_demo_documents(session: Session, ctx: object) -> None:
    """Publish the source document (厚労省 説明会資料6) as the demo's first document (idempotent)."""
    from pmo.accounts.models import Role

    if session.scalar(select(Document.id).where(Document.title == SOURCE_TITLE)) is not None:
        return
    mhlw = session.scalar(select(Ministry).where(Ministry.code == "mhlw"))
    if mhlw is None:
        return
    seed_dir = ctx.seed_dir
    text = (seed_dir / SOURCE_FILE).read_text(encoding="utf-8")
    root = getattr(ctx, "upload_dir", None)
    if root is None:
        return  # no place to store the file (the demo command passes the instance's uploads/)
    actor = Actor(user_id=0, login_id="demo", role=Role.MINISTRY_OFFICER, ministry_id=mhlw.id)
    data = DocumentInput(
        title=SOURCE_TITLE, field=Field.COMMON, tags="説明会資料、番号制度、情報連携、中間サーバー、補助金、本人確認",
        summary=("厚生労働省政策統括官付情報政策担当参事官室による平成27年度 社会保障・税番号制度担当者説明会の資料。"
                 "番号制度の導入に向けたスケジュール、番号利用事務・情報連携、業務フローの見直し、システム整備費補助金、"
                 "見積書のチェックポイント、デジタルPMO、個人番号の利用・情報連携を行う主な手続、本人確認の措置を説明しています。"),
    )
    doc = create_document(session, actor, data, Upload(text_to_docx(text), "社会保障・税番号制度担当者説明会資料6.docx"),
                          FileStore(root))
    doc.created_by_id = None
    publish_document(session, actor, doc.id)
    # The seeded FAQs were written from this deck: link them to it as their related document.
    from pmo.faq.models import Faq, FaqDocument

    for faq_id in session.scalars(select(Faq.id).where(Faq.seed_key.is_not(None))):
        session.add(FaqDocument(faq_id=faq_id, document_id=doc.id))
    session.flush()
