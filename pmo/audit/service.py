"""Write audit entries inside the caller's transaction, and read them within the viewer's scope."""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from pmo.accounts.permissions import Actor, Permission, scope_of, visible_prefecture
from pmo.audit.models import AuditEntry
from pmo.core import clock


@dataclass(frozen=True)
class RequestContext:
    """Where a change came from: set by the web layer per request, by the CLI per command."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    channel: str = "ui"
    batch_id: str | None = None


current_context: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "pmo_audit_context", default=RequestContext(channel="cli")
)


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """Return the named attributes of ``obj`` as JSON-ready values."""
    return {name: _plain(getattr(obj, name)) for name in fields}


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    *,
    target: Any = None,
    target_type: str | None = None,
    target_id: Any = None,
    target_body_code: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    outcome: str = "success",
    detail: str | None = None,
    actor_login: str | None = None,
) -> AuditEntry:
    """Add an audit entry to the session; it commits or rolls back with the change it describes."""
    ctx = current_context.get()
    if target is not None:
        target_type = target_type or type(target).__tablename__
        target_id = target_id if target_id is not None else getattr(target, "id", None)
    entry = AuditEntry(
        at_dt=clock.now(),
        action=action,
        outcome=outcome,
        actor_user_id=actor.user_id if actor else None,
        actor_login=(actor.login_id if actor else actor_login),
        actor_body_code=actor.body.code if actor and actor.body else None,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        target_body_code=target_body_code,
        before=_plain(before) if before is not None else None,
        after=_plain(after) if after is not None else None,
        channel=ctx.channel,
        batch_id=ctx.batch_id,
        ip=ctx.ip,
        user_agent=(ctx.user_agent or "")[:300] or None,
        request_id=ctx.request_id,
        detail=detail,
    )
    session.add(entry)
    return entry


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keep only the fields that changed, so an entry says exactly what moved."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


# Actions whose values are ministry- or finance-internal text: a viewer reads them only with the
# permission that writes them (or with the national audit reach of a system admin). A body admin sees
# that such a step happened on the body's records, never what was written (SECURITY.md AC-06).
RESTRICTED_ACTIONS: dict[str, Permission] = {
    "case.note_added": Permission.CASE_MANAGE,
    "subsidy.estimate_note": Permission.ESTIMATE_REVIEW,
}
WITHHELD = {"内容": "（府省・補助金担当の内部情報のため表示しません）"}


def visible_values(actor: Actor, entry: AuditEntry) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Return the entry's before/after values as the actor may read them (internal text withheld)."""
    permission = RESTRICTED_ACTIONS.get(entry.action)
    if permission is None or scope_of(actor, permission) is not None \
            or visible_prefecture(actor, Permission.AUDIT_VIEW) is True:
        return entry.before, entry.after
    return (WITHHELD if entry.before else None), (WITHHELD if entry.after else None)


@dataclass(frozen=True)
class AuditFilter:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    action: str | None = None
    login: str | None = None
    body_code: str | None = None
    outcome: str | None = None


def scoped_entries(actor: Actor, flt: AuditFilter) -> Select[tuple[AuditEntry]]:
    """Return the audit entries the actor may see: national for system admins, own body for body admins."""
    from pmo.core.clock import JST

    stmt = select(AuditEntry).order_by(AuditEntry.at_dt.desc(), AuditEntry.id.desc())
    reach = visible_prefecture(actor, Permission.AUDIT_VIEW)
    if reach is False:
        return stmt.where(AuditEntry.id < 0)
    if reach is not True:
        code = actor.body.code if actor.body else None
        stmt = stmt.where((AuditEntry.target_body_code == code) | (AuditEntry.actor_body_code == code))
    if flt.date_from:
        start = dt.datetime.combine(flt.date_from, dt.time(), JST)
        stmt = stmt.where(AuditEntry.at_dt >= start)
    if flt.date_to:
        end = dt.datetime.combine(flt.date_to + dt.timedelta(days=1), dt.time(), JST)
        stmt = stmt.where(AuditEntry.at_dt < end)
    if flt.action:
        stmt = stmt.where(AuditEntry.action.startswith(flt.action))
    if flt.login:
        stmt = stmt.where(AuditEntry.actor_login == flt.login)
    if flt.body_code:
        stmt = stmt.where(
            (AuditEntry.target_body_code == flt.body_code) | (AuditEntry.actor_body_code == flt.body_code)
        )
    if flt.outcome:
        stmt = stmt.where(AuditEntry.outcome == flt.outcome)
    return stmt
