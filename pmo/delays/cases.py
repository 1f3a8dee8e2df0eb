"""Follow-up case use cases: open (one body or many), record actions, answer, comment, change status.

Ministry officers (``CASE_MANAGE``) open and manage cases; a body (``CASE_ANSWER``) answers its own;
a prefecture reads its municipalities' cases and may add a support comment. Officers may also keep
府省内メモ (``EntryKind.NOTE``) that only case managers read (``visible_entries``). Every step is one
timeline entry and one audit entry. Changes of the case itself carry the version read by the user:
a stale version raises ``CaseConflict`` holding the stored values, so the screen can show both.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from pmo.accounts.models import Role, User
from pmo.accounts.permissions import Actor, Permission, can
from pmo.accounts.service import body_ref
from pmo.audit import service as audit
from pmo.core import clock
from pmo.core.errors import Conflict, NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.delays import rules
from pmo.delays import service as delays
from pmo.delays.models import INTERNAL_KINDS, CaseCause, CaseEntry, CaseStatus, EntryKind, FollowupCase
from pmo.orgs.models import Body
from pmo.orgs.service import scope_filter

CASE_FIELDS = ("title", "cause", "status", "owner_id", "next_contact_date", "subtasks", "vendor")
MAX_BODIES_PER_BATCH = 500
MAX_TEXT = 4000


@dataclass(frozen=True)
class CaseInput:
    """What an officer gives when opening cases."""

    title: str
    cause: CaseCause
    note: str = ""
    next_contact_date: dt.date | None = None
    owner_id: int | None = None
    vendor: str | None = None


@dataclass(frozen=True)
class CaseUpdate:
    """A change of a case's state by an officer, with an optional note for the timeline."""

    status: CaseStatus
    cause: CaseCause
    next_contact_date: dt.date | None
    owner_id: int | None
    note: str = ""


class CaseConflict(Conflict):
    """The case changed since the user read it; ``current`` holds the stored values."""

    def __init__(self, case: FollowupCase) -> None:
        super().__init__("他のユーザーが先にこのフォローを更新しました。最新の内容を確認してから、もう一度保存してください。")
        self.current = {
            "status": case.status.label, "cause": case.cause.label,
            "next_contact_date": case.next_contact_date.isoformat() if case.next_contact_date else "（なし）",
            "owner": case.owner.display_name if case.owner else "（なし）", "version": case.version,
        }


def _name(session: Session, actor: Actor) -> str:
    user = session.get(User, actor.user_id)
    return user.display_name if user is not None else actor.login_id


def _snapshot(case: FollowupCase) -> dict[str, Any]:
    return audit.snapshot(case, CASE_FIELDS)


def _check_text(text: str, field: str, required: bool = True) -> str:
    text = (text or "").strip()
    if required and not text:
        raise ValidationFailed([Problem(field, "内容を入力してください。")])
    if len(text) > MAX_TEXT:
        raise ValidationFailed([Problem(field, f"{MAX_TEXT}文字以内で入力してください（現在{len(text)}文字）。")])
    return text


def _check_owner(session: Session, owner_id: int | None) -> None:
    if owner_id is None:
        return
    owner = session.get(User, owner_id)
    if owner is None or owner.role is not Role.MINISTRY_OFFICER or not owner.is_active:
        raise ValidationFailed([Problem("owner_id", "担当者には有効な府省の担当官を選んでください。")])


def officers(session: Session) -> list[User]:
    """Return the active ministry officers, who may own cases."""
    return list(session.scalars(
        select(User).where(User.role == Role.MINISTRY_OFFICER, User.is_active.is_(True)).order_by(User.display_name)
    ))


def _ensure_manage(actor: Actor) -> None:
    if not can(actor, Permission.CASE_MANAGE):
        raise PermissionDenied("フォローを管理する権限がありません。")


def open_cases(
    session: Session, actor: Actor, body_codes: list[str], data: CaseInput, as_of: dt.date,
) -> list[FollowupCase]:
    """Open one case per body, each with the signals that hold on ``as_of`` in its first entry.

    :raise ValidationFailed: no body, too many, an unknown code, or a bad title/owner.
    """
    _ensure_manage(actor)
    codes = list(dict.fromkeys(c.strip() for c in body_codes if c and c.strip()))
    problems = []
    if not codes:
        problems.append(Problem("bodies", "フォローする団体を1つ以上選んでください。"))
    if len(codes) > MAX_BODIES_PER_BATCH:
        problems.append(Problem("bodies", f"一度に開始できるのは{MAX_BODIES_PER_BATCH}団体までです（{len(codes)}団体が選ばれています）。"))
    title = (data.title or "").strip()
    if not title:
        problems.append(Problem("title", "件名を入力してください。"))
    elif len(title) > 200:
        problems.append(Problem("title", "件名は200文字以内で入力してください。"))
    bodies = {b.code: b for b in session.scalars(select(Body).where(Body.code.in_(codes)))} if codes else {}
    unknown = [c for c in codes if c not in bodies]
    if unknown:
        problems.append(Problem("bodies", f"団体コード {'、'.join(unknown[:10])} の団体が見つかりません。"))
    if problems:
        raise ValidationFailed(problems)
    _check_owner(session, data.owner_id)
    note = _check_text(data.note, "note", required=False)

    plans = delays.load_plans(session, delays.Reach(body_ids=tuple(b.id for b in bodies.values())), as_of)
    state = delays.judge(plans, as_of, delays.get_thresholds(session))
    by_body = {code: group for code, group in delays.explained(state.signals).groupby("body_code", observed=True)}
    batch = secrets.token_hex(8) if len(codes) > 1 else None
    now = clock.now()
    author = _name(session, actor)
    opened = []
    for code in codes:
        body = bodies[code]
        signals = by_body.get(code)
        if signals is not None and data.vendor:
            vendor_subtasks = set(plans[(plans["body_code"] == code) & (plans["vendor"] == data.vendor)]["subtask"])
            signals = signals[signals["subtask"].isin(vendor_subtasks)]
        summary, subtasks = summarize_signals(signals)
        case = FollowupCase(
            body_id=body.id, title=title, cause=data.cause, status=CaseStatus.OPEN,
            owner_id=data.owner_id or actor.user_id, next_contact_date=data.next_contact_date,
            subtasks=subtasks[:200] or None, signal_summary=summary, as_of=as_of, vendor=data.vendor or None,
            batch_id=batch, opened_dt=now, opened_by_id=actor.user_id, updated_dt=now, version=1,
        )
        text = f"{as_of.year}年{as_of.month}月{as_of.day}日時点の状況によりフォローを開始しました。"
        if note:
            text += "\n" + note
        case.entries.append(CaseEntry(kind=EntryKind.OPENED, text=text, author_id=actor.user_id,
                                      author_name=author, at_dt=now))
        session.add(case)
        session.flush()
        audit.record(session, actor, "case.opened", target=case, target_body_code=code, after=_snapshot(case),
                     detail=f"batch={batch}" if batch else None)
        opened.append(case)
    return opened


def summarize_signals(signals: Any) -> tuple[str, str]:
    """Return the signals as Japanese lines, worst first, unplanned sub-tasks on one line; and the sub-tasks."""
    if signals is None or not len(signals):
        return "（基準日時点で遅延の兆候はありません）", ""
    ordered = signals.assign(_rank=-signals["severity"].cat.codes).sort_values("_rank", kind="stable")
    unplanned = ordered[ordered["signal"] == rules.SignalKind.NO_PLAN.value]
    others = ordered[ordered["signal"] != rules.SignalKind.NO_PLAN.value]
    lines = [f"［{rules.Severity.from_code(str(s)).label}］{text}" for s, text in zip(others["severity"], others["explanation"])]
    if len(unplanned):
        label = rules.Severity.from_code(str(unplanned["severity"].iloc[0])).label
        lines.append(f"［{label}］計画終了日が入力されていないサブタスク（{len(unplanned)}件）：{'、'.join(unplanned['subtask'])}")
    focus = others if len(others) else unplanned
    return "\n".join(lines), " ".join(dict.fromkeys(focus["subtask"]))


def get_case(session: Session, actor: Actor, case_id: int) -> FollowupCase:
    """Return a case the actor may see; any other is reported as not found (and audited as denied)."""
    case = session.scalar(
        select(FollowupCase).where(FollowupCase.id == case_id)
        .options(selectinload(FollowupCase.entries), selectinload(FollowupCase.body).selectinload(Body.prefecture))
    )
    if case is None:
        raise NotFound("フォローが見つかりません。")
    if not can(actor, Permission.CASE_VIEW, body_ref(case.body)):
        audit.record(session, actor, "authz.denied", outcome="denied", target=case,
                     target_body_code=case.body.code, detail=str(Permission.CASE_VIEW))
        raise NotFound("フォローが見つかりません。")
    return case


@dataclass(frozen=True)
class CaseFilter:
    status: CaseStatus | None = None
    open_only: bool = False
    prefecture_code: str | None = None
    cause: CaseCause | None = None
    owner_id: int | None = None
    body_code: str | None = None
    vendor: str | None = None


def list_cases(session: Session, actor: Actor, flt: CaseFilter = CaseFilter(), limit: int = 500) -> list[FollowupCase]:
    """Return the cases the actor may see, newest change first."""
    stmt = scope_filter(select(FollowupCase).join(Body, Body.id == FollowupCase.body_id), actor, Permission.CASE_VIEW)
    if flt.status is not None:
        stmt = stmt.where(FollowupCase.status == flt.status)
    elif flt.open_only:
        stmt = stmt.where(FollowupCase.status != CaseStatus.RESOLVED)
    if flt.prefecture_code:
        stmt = stmt.where(Body.prefecture_code == flt.prefecture_code)
    if flt.cause is not None:
        stmt = stmt.where(FollowupCase.cause == flt.cause)
    if flt.owner_id is not None:
        stmt = stmt.where(FollowupCase.owner_id == flt.owner_id)
    if flt.body_code:
        stmt = stmt.where(Body.code == flt.body_code)
    if flt.vendor:
        stmt = stmt.where(FollowupCase.vendor == flt.vendor)
    stmt = stmt.options(selectinload(FollowupCase.body).selectinload(Body.prefecture), selectinload(FollowupCase.owner))
    return list(session.scalars(stmt.order_by(FollowupCase.updated_dt.desc(), FollowupCase.id.desc()).limit(limit)))


def case_counts(session: Session, actor: Actor) -> dict[str, int]:
    """Return the number of visible cases per status code."""
    stmt = scope_filter(
        select(FollowupCase.status, func.count()).join(Body, Body.id == FollowupCase.body_id), actor, Permission.CASE_VIEW
    ).group_by(FollowupCase.status)
    counts = {s.value: 0 for s in CaseStatus}
    for status, count in session.execute(stmt):
        counts[status.value if isinstance(status, CaseStatus) else status] = count
    return counts


def open_case_by_body(session: Session, actor: Actor) -> dict[str, FollowupCase]:
    """Return the newest unresolved case of each visible body, by body code."""
    out: dict[str, FollowupCase] = {}
    for case in reversed(list_cases(session, actor, CaseFilter(open_only=True), limit=100_000)):
        out[case.body.code] = case
    return out


def visible_entries(actor: Actor, case: FollowupCase) -> list[CaseEntry]:
    """Return the timeline the actor may read: without the ministry's internal notes unless a case manager."""
    if can(actor, Permission.CASE_MANAGE, body_ref(case.body)):
        return list(case.entries)
    return [e for e in case.entries if e.kind not in INTERNAL_KINDS]


def _append(session: Session, actor: Actor, case: FollowupCase, kind: EntryKind, text: str) -> CaseEntry:
    now = clock.now()
    entry = CaseEntry(kind=kind, text=text, author_id=actor.user_id, author_name=_name(session, actor), at_dt=now)
    case.entries.append(entry)
    case.updated_dt = now
    case.version += 1
    session.flush()
    return entry


def add_entry(session: Session, actor: Actor, case_id: int, text: str, internal: bool = False) -> CaseEntry:
    """Add the actor's entry to a case: an officer's action or internal note, the body's answer or the
    prefecture's comment.

    :raise PermissionDenied: when the actor may only read the case (or it is resolved, for a body), or
        asks for an internal note without managing cases.
    """
    case = get_case(session, actor, case_id)
    text = _check_text(text, "text")
    ref = body_ref(case.body)
    if internal:
        if not can(actor, Permission.CASE_MANAGE, ref):
            raise PermissionDenied("府省内メモを記入できるのは府省の担当官だけです。")
        kind, action = EntryKind.NOTE, "case.note_added"
    elif can(actor, Permission.CASE_MANAGE, ref):
        kind, action = EntryKind.ACTION, "case.action_added"
    elif can(actor, Permission.CASE_ANSWER, ref):
        kind, action = EntryKind.ANSWER, "case.answered"
    elif actor.role is Role.PREFECTURE_STAFF and can(actor, Permission.PLAN_COMMENT, ref):
        kind, action = EntryKind.COMMENT, "case.commented"
    else:
        raise PermissionDenied("このフォローに記入する権限がありません。")
    if kind not in (EntryKind.ACTION, EntryKind.NOTE) and not case.is_open:
        raise PermissionDenied("解決済みのフォローには記入できません。")
    entry = _append(session, actor, case, kind, text)
    audit.record(session, actor, action, target=case, target_body_code=case.body.code, after={"text": text})
    return entry


def update_case(session: Session, actor: Actor, case_id: int, data: CaseUpdate, version: int | None) -> FollowupCase:
    """Change a case's status, cause, owner or next contact date; stale ``version`` → ``CaseConflict``."""
    case = get_case(session, actor, case_id)
    if not can(actor, Permission.CASE_MANAGE, body_ref(case.body)):
        raise PermissionDenied("フォローを管理する権限がありません。")
    if version is None or version != case.version:
        raise CaseConflict(case)
    _check_owner(session, data.owner_id)
    note = _check_text(data.note, "note", required=False)
    before = _snapshot(case)
    changes = []
    if case.status is not data.status:
        changes.append(f"状況：{case.status.label} → {data.status.label}")
    if case.cause is not data.cause:
        changes.append(f"原因：{case.cause.label} → {data.cause.label}")
    if case.next_contact_date != data.next_contact_date:
        old = case.next_contact_date.isoformat() if case.next_contact_date else "なし"
        new = data.next_contact_date.isoformat() if data.next_contact_date else "なし"
        changes.append(f"次回連絡日：{old} → {new}")
    if case.owner_id != data.owner_id:
        owner = session.get(User, data.owner_id) if data.owner_id else None
        changes.append(f"担当：{case.owner.display_name if case.owner else 'なし'} → {owner.display_name if owner else 'なし'}")
    if not changes and not note:
        raise ValidationFailed([Problem("status", "変更された項目がありません。")])
    case.status, case.cause = data.status, data.cause
    case.next_contact_date, case.owner_id = data.next_contact_date, data.owner_id
    case.resolved_dt = clock.now() if data.status is CaseStatus.RESOLVED else None
    text = "\n".join(changes + ([note] if note else []))
    _append(session, actor, case, EntryKind.UPDATE, text)
    audit.record(session, actor, "case.updated", target=case, target_body_code=case.body.code,
                 before=before, after=_snapshot(case))
    return case
