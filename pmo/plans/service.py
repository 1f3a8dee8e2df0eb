"""Plan use cases: read a body's sheet (now or on a past date), save it all-or-nothing with a
concurrent-edit check, keep every change as a PlanRevision, close a month, add support comments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, case, func, not_, or_, select
from sqlalchemy.orm import Session, selectinload

from pmo.accounts.permissions import Actor, BodyRef, Permission, can
from pmo.accounts.service import body_ref
from pmo.audit import service as audit
from pmo.catalog.models import CompletionField, Subtask
from pmo.catalog.service import SubtaskView, subtasks_on
from pmo.core import clock, my_number
from pmo.core.dates import PartialDate
from pmo.core.errors import Conflict, NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.orgs.models import Body, BodyKind
from pmo.orgs.service import get_body
from pmo.plans import rules
from pmo.plans.bulk import bulk_insert
from pmo.plans.models import (
    CompletionValue,
    DatePrecision,
    MonthlySnapshot,
    Plan,
    PlanComment,
    PlanRevision,
    SnapshotRow,
)
from pmo.plans.rules import FieldSpec, PlanValues

# --- values in and out of rows --------------------------------------------------------------------


def _pd(value: dt.date | None, precision: DatePrecision) -> PartialDate | None:
    return PartialDate(value, precision.value) if value is not None else None


def values_of(plan: Plan | None, codes: dict[int, str] | None = None) -> PlanValues:
    """Read a Plan row (and its completion values) as canonical ``PlanValues``."""
    if plan is None:
        return PlanValues()
    completion = ()
    if plan.completion_values:
        completion = tuple(sorted(
            ((codes or {}).get(cv.field_id) or cv.field.code, cv.value) for cv in plan.completion_values if cv.value
        ))
    return PlanValues(
        planned_start=_pd(plan.planned_start, plan.planned_start_precision),
        planned_end=_pd(plan.planned_end, plan.planned_end_precision),
        actual_start=_pd(plan.actual_start, plan.actual_start_precision),
        actual_end=_pd(plan.actual_end, plan.actual_end_precision),
        progress=plan.progress, not_applicable_reason=plan.not_applicable_reason, comment=plan.comment,
        vendor=plan.vendor, completion=completion,
    )


def column_values(values: PlanValues) -> dict[str, Any]:
    """Return the Plan column values for ``values`` (completion items excluded)."""
    out: dict[str, Any] = {}
    for name in rules.DATE_FIELDS:
        value: PartialDate | None = getattr(values, name)
        out[name] = value.value if value else None
        out[f"{name}_precision"] = DatePrecision(value.precision) if value else DatePrecision.DAY
    out.update(progress=values.progress, not_applicable_reason=values.not_applicable_reason, comment=values.comment,
               vendor=values.vendor)
    return out


def fingerprint(values: PlanValues) -> str:
    """A short digest of a row's values as shown, to tell later which rows the user changed."""
    return hashlib.sha1(json.dumps(values.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def field_specs(fields: Iterable[CompletionField]) -> list[FieldSpec]:
    return [FieldSpec(f.code, f.label, f.field_type.value, f.required, tuple(f.choices or ())) for f in fields]


# --- the sheet ----------------------------------------------------------------------------------


@dataclass
class SheetRow:
    subtask: SubtaskView
    values: PlanValues
    status: str
    specs: list[FieldSpec]
    version: int = 0
    plan_id: int | None = None
    updated_dt: dt.datetime | None = None
    updated_by: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.values)

    @property
    def after_milestone(self) -> bool:
        end = self.values.planned_end
        return bool(end and not self.values.is_not_applicable and end.end() > self.subtask.milestone_date)


@dataclass
class Sheet:
    body: Body
    as_of: dt.date
    historical: bool
    rows: list[SheetRow]
    groups: list[tuple[str, str, list[SheetRow]]] = field(default_factory=list)

    @property
    def completion_rate(self) -> float:
        return rules.completion_rate([r.status for r in self.rows])

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in rules.STATUS_LABELS}
        for row in self.rows:
            out[row.status] += 1
        return out


def applicable_subtasks(session: Session, body: Body, on: dt.date) -> list[SubtaskView]:
    return [s for s in subtasks_on(session, on) if s.applies_to(body.kind)]


def _specs_by_subtask(session: Session) -> dict[int, list[FieldSpec]]:
    out: dict[int, list[FieldSpec]] = {}
    for f in session.scalars(select(CompletionField).order_by(CompletionField.subtask_id, CompletionField.sort_order)):
        out.setdefault(f.subtask_id, []).append(FieldSpec(f.code, f.label, f.field_type.value, f.required,
                                                          tuple(f.choices or ())))
    return out


def load_sheet(session: Session, actor: Actor, body_code: str, as_of: dt.date | None = None,
               permission: Permission = Permission.PLAN_VIEW) -> Sheet:
    """Return a body's plans for every applicable sub-task, now or as recorded at the end of ``as_of``."""
    body = get_body(session, actor, body_code, permission)
    today = clock.today()
    historical = as_of is not None and as_of < today
    on = as_of if historical else today
    subtasks = applicable_subtasks(session, body, on)
    specs = _specs_by_subtask(session)
    rows: list[SheetRow] = []
    if historical:
        state = state_on(session, on, body_ids=[body.id])
        for st in subtasks:
            values = state.get((body.id, st.id), PlanValues())
            rows.append(SheetRow(st, values, rules.status_of(values, on), specs.get(st.id, [])))
    else:
        plans = {p.subtask_id: p for p in session.scalars(
            select(Plan).where(Plan.body_id == body.id)
            .options(selectinload(Plan.completion_values).selectinload(CompletionValue.field))
        )}
        users = _user_names(session, {p.updated_by_id for p in plans.values() if p.updated_by_id})
        for st in subtasks:
            plan = plans.get(st.id)
            values = values_of(plan)
            rows.append(SheetRow(st, values, rules.status_of(values, on), specs.get(st.id, []),
                                 version=plan.version if plan else 0, plan_id=plan.id if plan else None,
                                 updated_dt=plan.updated_dt if plan else None,
                                 updated_by=users.get(plan.updated_by_id) if plan and plan.updated_by_id else None))
    sheet = Sheet(body=body, as_of=on, historical=historical, rows=rows)
    for row in rows:
        if not sheet.groups or sheet.groups[-1][0] != row.subtask.item_code:
            sheet.groups.append((row.subtask.item_code, row.subtask.item_name, []))
        sheet.groups[-1][2].append(row)
    return sheet


def _user_names(session: Session, ids: set[int]) -> dict[int, str]:
    from pmo.accounts.models import User

    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


# --- saving -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowInput:
    """One row as submitted: the sub-task, the version and fingerprint it was read at, the raw fields."""

    subtask_code: str
    raw: dict[str, Any]
    version: int | None = None  # None: no concurrent-edit check (a trusted batch)
    fingerprint: str | None = None  # None: compare with the stored values instead
    not_applicable: bool | None = None


@dataclass(frozen=True)
class ConflictRow:
    subtask_code: str
    subtask_name: str
    fields: list[str]
    theirs: PlanValues
    yours: PlanValues
    version: int
    updated_by: str | None
    updated_dt: dt.datetime | None


class PlanConflict(Conflict):
    """Someone saved some of these rows after they were read: nothing was written."""

    def __init__(self, rows: list[ConflictRow]) -> None:
        codes = "、".join(r.subtask_code for r in rows)
        super().__init__(f"他のユーザーが先に保存しました（{codes}）。どちらの値を残すか確認してください。")
        self.rows = rows


@dataclass
class SaveResult:
    changed: list[str]
    plans: list[Plan]


def save_sheet(session: Session, actor: Actor, body_code: str, inputs: Sequence[RowInput],
               channel: str = "ui", batch_id: str | None = None) -> SaveResult:
    """Save the rows the user changed, all or nothing.

    Raises ``ValidationFailed`` (fields named ``<subtask code>.<field>``) listing every problem,
    or ``PlanConflict`` when a changed row was saved by someone else since it was read; in both
    cases nothing is written.
    """
    body = get_body(session, actor, body_code, Permission.PLAN_EDIT)
    if not can(actor, Permission.PLAN_EDIT, body_ref(body)):
        raise NotFound("団体が見つかりません。")
    today = clock.today()
    subtasks = {s.code: s for s in applicable_subtasks(session, body, today)}
    specs = _specs_by_subtask(session)
    plans = {p.subtask_id: p for p in session.scalars(
        select(Plan).where(Plan.body_id == body.id).with_for_update()
        .options(selectinload(Plan.completion_values).selectinload(CompletionValue.field))
    )}
    problems: list[Problem] = []
    conflicts: list[ConflictRow] = []
    work: list[tuple[SubtaskView, Plan | None, PlanValues, PlanValues]] = []
    users = _user_names(session, {p.updated_by_id for p in plans.values() if p.updated_by_id})
    for item in inputs:
        st = subtasks.get(item.subtask_code)
        if st is None:
            problems.append(Problem(f"{item.subtask_code}.subtask",
                                    f"サブタスク「{item.subtask_code}」はこの団体には適用されません。"))
            continue
        plan = plans.get(st.id)
        current = values_of(plan)
        st_specs = specs.get(st.id, [])
        parsed, found = rules.parse_values(item.raw, st_specs, not_applicable=item.not_applicable)
        if item.fingerprint is not None and not found and fingerprint(parsed) == item.fingerprint:
            continue  # the user did not touch this row
        if not found and parsed == current:
            continue
        found += rules.check_values(parsed, today, st_specs)
        problems += [Problem(f"{st.code}.{p.field}", p.message) for p in found]
        current_version = plan.version if plan else 0
        if item.version is not None and item.version != current_version and parsed != current:
            conflicts.append(ConflictRow(
                st.code, st.name, rules.changed_fields(current, parsed), current, parsed, current_version,
                users.get(plan.updated_by_id) if plan and plan.updated_by_id else None,
                plan.updated_dt if plan else None,
            ))
        work.append((st, plan, current, parsed))
    if conflicts:
        raise PlanConflict(conflicts)
    if problems:
        raise ValidationFailed(problems)
    now = clock.now()
    field_ids = {(f.subtask_id, f.code): f.id for f in session.scalars(select(CompletionField))}
    saved: list[Plan] = []
    for st, plan, current, parsed in work:
        if plan is None:
            plan = Plan(body_id=body.id, subtask_id=st.id, version=0)
            session.add(plan)
        for name, value in column_values(parsed).items():
            setattr(plan, name, value)
        plan.version = (plan.version or 0) + 1
        plan.updated_dt, plan.updated_by_id = now, actor.user_id or None
        wanted = parsed.completion_dict()
        existing = {cv.field_id: cv for cv in plan.completion_values}
        for (sid, code), fid in field_ids.items():
            if sid != st.id:
                continue
            if code in wanted:
                if fid in existing:
                    existing[fid].value = wanted[code]
                else:
                    plan.completion_values.append(CompletionValue(field_id=fid, value=wanted[code]))
            elif fid in existing:
                plan.completion_values.remove(existing[fid])
        session.flush()
        session.add(PlanRevision(
            plan_id=plan.id, body_id=body.id, subtask_id=st.id, recorded_dt=now, user_id=actor.user_id or None,
            channel=channel, batch_id=batch_id, before=None if current.is_empty and plan.version == 1 else current.to_json(),
            after=parsed.to_json(),
        ))
        before, after = audit.changes(current.to_json(), parsed.to_json())
        audit.record(session, actor, "plan.updated", target=plan, target_body_code=body.code,
                     before=before, after=after, detail=st.code)
        saved.append(plan)
    session.flush()
    return SaveResult([st.code for st, *_ in work], saved)


# --- history ------------------------------------------------------------------------------------


def end_of_day(on: dt.date) -> dt.datetime:
    """The first instant after ``on`` in Japan (revisions recorded before it count for ``on``)."""
    return dt.datetime.combine(on + dt.timedelta(days=1), dt.time(), clock.JST)


def state_on(session: Session, on: dt.date, body_ids: Sequence[int] | None = None
             ) -> dict[tuple[int, int], PlanValues]:
    """Replay history: each plan's newest revision recorded by the end of ``on``."""
    ranked = select(
        PlanRevision.body_id, PlanRevision.subtask_id, PlanRevision.after,
        func.row_number().over(partition_by=PlanRevision.plan_id,
                               order_by=(PlanRevision.recorded_dt.desc(), PlanRevision.id.desc())).label("rn"),
    ).where(PlanRevision.recorded_dt < end_of_day(on))
    if body_ids is not None:
        ranked = ranked.where(PlanRevision.body_id.in_(body_ids))
    sub = ranked.subquery()
    rows = session.execute(select(sub.c.body_id, sub.c.subtask_id, sub.c.after).where(sub.c.rn == 1))
    return {(b, s): PlanValues.from_json(after) for b, s, after in rows}


def plan_history(session: Session, actor: Actor, body_code: str, limit: int = 200) -> list[dict[str, Any]]:
    """Return the body's recent plan changes, newest first, with what changed."""
    body = get_body(session, actor, body_code, Permission.PLAN_VIEW)
    codes = dict(session.execute(select(Subtask.id, Subtask.code)).all())
    revisions = session.scalars(
        select(PlanRevision).where(PlanRevision.body_id == body.id)
        .order_by(PlanRevision.recorded_dt.desc(), PlanRevision.id.desc()).limit(limit)
    ).all()
    users = _user_names(session, {r.user_id for r in revisions if r.user_id})
    out = []
    for rev in revisions:
        before, after = PlanValues.from_json(rev.before), PlanValues.from_json(rev.after)
        names = rules.changed_fields(before, after)
        out.append({
            "recorded_dt": rev.recorded_dt, "subtask": codes.get(rev.subtask_id, "?"), "channel": rev.channel,
            "user": users.get(rev.user_id) if rev.user_id else None, "batch_id": rev.batch_id,
            "changes": [(rules.FIELD_LABELS.get(n, n), rules.display_value(before, n), rules.display_value(after, n))
                        for n in names],
        })
    return out


# --- monthly close --------------------------------------------------------------------------------


def month_end(month: dt.date) -> dt.date:
    nxt = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return nxt - dt.timedelta(days=1)


def snapshot_rows(session: Session, on: dt.date) -> list[dict[str, Any]]:
    """Every applicable (body, sub-task) with its state recorded by the end of ``on``, as insert rows."""
    subtasks = subtasks_on(session, on)
    state = state_on(session, on)
    out: list[dict[str, Any]] = []
    empty = PlanValues()
    for body_id, kind in session.execute(select(Body.id, Body.kind).order_by(Body.code)):
        for st in subtasks:
            if not st.applies_to(kind):
                continue
            values = state.get((body_id, st.id), empty)
            row = column_values(values)
            del row["comment"], row["vendor"]
            reason = row.pop("not_applicable_reason")
            row.update(body_id=body_id, subtask_id=st.id, not_applicable=bool(reason),
                       status=rules.status_of(values, on))
            out.append(row)
    return out


def close_month(session: Session, actor: Actor, month: dt.date) -> MonthlySnapshot:
    """Freeze every body's state at the end of ``month`` (月次締め); a month is closed once."""
    if not can(actor, Permission.MONTHLY_CLOSE):
        raise PermissionDenied("月次締めを行う権限がありません。")
    month = month.replace(day=1)
    as_of = month_end(month)
    if as_of >= clock.today():
        raise ValidationFailed([Problem("month", f"{month.year}年{month.month}月はまだ終わっていないため締められません。")])
    if session.scalar(select(MonthlySnapshot.id).where(MonthlySnapshot.month == month)) is not None:
        raise ValidationFailed([Problem("month", f"{month.year}年{month.month}月は締め済みです。")])
    snapshot = MonthlySnapshot(month=month, as_of=as_of, closed_dt=clock.now(), closed_by_id=actor.user_id or None)
    session.add(snapshot)
    session.flush()
    rows = snapshot_rows(session, as_of)
    for row in rows:
        row["snapshot_id"] = snapshot.id
    bulk_insert(session, SnapshotRow.__table__, rows)
    snapshot.row_count = len(rows)
    audit.record(session, actor, "plans.month_closed", target=snapshot, after={"month": month, "rows": len(rows)})
    session.flush()
    return snapshot


def list_snapshots(session: Session) -> list[MonthlySnapshot]:
    return list(session.scalars(select(MonthlySnapshot).order_by(MonthlySnapshot.month.desc())))


# --- prefecture view and comments ------------------------------------------------------------------


@dataclass(frozen=True)
class BodyLine:
    """What the prefecture table shows of a body (read as columns, not as an ORM object)."""

    id: int
    code: str
    name: str
    kind: BodyKind


@dataclass
class BodySummary:
    body: BodyLine
    total: int
    counts: dict[str, int]
    no_plan: int
    after_milestone: int
    last_update: dt.datetime | None

    @property
    def completion_rate(self) -> float:
        return (self.counts["done"] + self.counts["not_applicable"]) / self.total if self.total else 0.0


def _count(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _ids(values: Iterable[int]) -> Any:
    """An IN list of our own integer ids, written into the SQL: one short statement, not hundreds of parameters."""
    return bindparam(None, [int(v) for v in values], expanding=True, literal_execute=True)


def prefecture_summaries(session: Session, actor: Actor, prefecture_code: str | None = None) -> list[BodySummary]:
    """Summaries of every body the actor may comment on in its prefecture (the prefecture first).

    One aggregate query counts each body's statuses in the database (the same rules as
    ``rules.status_of``); no plan row is loaded, so the page costs a few milliseconds even for
    北海道's 180 bodies.
    """
    if actor.body is None or not can(actor, Permission.PLAN_COMMENT):
        raise PermissionDenied("管下団体の進捗を閲覧する権限がありません。")
    code = prefecture_code or actor.body.prefecture_code
    today = clock.today()
    subtasks = subtasks_on(session, today)
    bodies = [
        BodyLine(i, c, n, k) for i, c, n, k, p in session.execute(
            select(Body.id, Body.code, Body.name, Body.kind, Body.prefecture_code)
            .where(Body.prefecture_code == code).order_by(Body.code))
        if can(actor, Permission.PLAN_COMMENT, BodyRef(i, c, p, k is BodyKind.PREFECTURE))
    ]
    if not bodies:
        return []
    applicable = {kind: [st.id for st in subtasks if st.applies_to(kind)] for kind in {b.kind for b in bodies}}
    bodies_of: dict[tuple[int, ...], list[int]] = {}  # bodies sharing the same sub-tasks: one condition each
    for body in bodies:
        bodies_of.setdefault(tuple(applicable[body.kind]), []).append(body.id)
    day_cut, month_cut = rules.done_cutoffs(today)
    na = and_(Plan.not_applicable_reason.is_not(None), Plan.not_applicable_reason != "")
    done = and_(Plan.actual_end.is_not(None), or_(
        and_(Plan.actual_end_precision == DatePrecision.DAY, Plan.actual_end <= day_cut),
        and_(Plan.actual_end_precision == DatePrecision.MONTH, Plan.actual_end <= month_cut)))
    started = or_(and_(Plan.actual_start.is_not(None), Plan.actual_start <= today),
                  and_(Plan.progress.is_not(None), Plan.progress != 0))
    by_milestone: dict[dt.date, list[int]] = {}
    for st in subtasks:
        by_milestone.setdefault(st.milestone_date, []).append(st.id)
    late_parts = []
    for milestone, ids in by_milestone.items():
        day_after, month_after = rules.late_thresholds(milestone)
        late_parts.append(and_(Plan.subtask_id.in_(_ids(ids)), or_(
            and_(Plan.planned_end_precision == DatePrecision.DAY, Plan.planned_end >= day_after),
            and_(Plan.planned_end_precision == DatePrecision.MONTH, Plan.planned_end >= month_after))))
    stmt = (
        select(Plan.body_id, _count(na), _count(and_(not_(na), done)), _count(and_(not_(na), not_(done), started)),
               _count(and_(not_(na), Plan.planned_end.is_not(None))),
               _count(and_(not_(na), Plan.planned_end.is_not(None), or_(*late_parts))), func.max(Plan.updated_dt))
        .where(or_(*(and_(Plan.body_id.in_(_ids(body_ids)), Plan.subtask_id.in_(_ids(ids)))
                     for ids, body_ids in bodies_of.items() if ids)))
        .group_by(Plan.body_id)
    )
    found = {row[0]: row[1:] for row in session.execute(stmt)}
    out = []
    for body in bodies:
        total = len(applicable[body.kind])
        n_na, n_done, n_started, n_planned, n_late, last = found.get(body.id, (0, 0, 0, 0, 0, None))
        n_na, n_done, n_started = int(n_na or 0), int(n_done or 0), int(n_started or 0)
        counts = {rules.NOT_STARTED: total - n_na - n_done - n_started, rules.IN_PROGRESS: n_started,
                  rules.DONE: n_done, rules.NOT_APPLICABLE: n_na}
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=dt.UTC)  # SQLite returns naive UTC
        out.append(BodySummary(body, total, counts, total - n_na - int(n_planned or 0), int(n_late or 0), last))
    return out


def add_comment(session: Session, actor: Actor, body_code: str, text: str, subtask_code: str | None = None,
                author_name: str = "", author_org: str = "") -> PlanComment:
    """Add a support comment to a body's plans (prefecture staff for their municipalities)."""
    body = get_body(session, actor, body_code, Permission.PLAN_VIEW)
    if not can(actor, Permission.PLAN_COMMENT, body_ref(body)):
        raise PermissionDenied("この団体にコメントする権限がありません。")
    text = (text or "").strip()
    if not text:
        raise ValidationFailed([Problem("text", "コメントを入力してください。")])
    if len(text) > 2000:
        raise ValidationFailed([Problem("text", "コメントは2000文字以内で入力してください。")])
    if my_number.contains_my_number(text):
        raise ValidationFailed([Problem("text", f"支援コメントに{my_number.MESSAGE}")])
    subtask_id = None
    if subtask_code:
        subtask_id = session.scalar(select(Subtask.id).where(Subtask.code == subtask_code))
    comment = PlanComment(body_id=body.id, subtask_id=subtask_id, author_id=actor.user_id or None,
                          author_name=author_name or actor.login_id, author_org=author_org,
                          created_dt=clock.now(), text=text)
    session.add(comment)
    session.flush()
    audit.record(session, actor, "plan.comment_added", target=comment, target_body_code=body.code,
                 after={"text": text, "subtask": subtask_code})
    return comment


def list_comments(session: Session, body: Body) -> list[PlanComment]:
    return list(session.scalars(select(PlanComment).where(PlanComment.body_id == body.id)
                                .order_by(PlanComment.created_dt.desc()).limit(100)))
