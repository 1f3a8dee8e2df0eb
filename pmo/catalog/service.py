"""Catalog use cases: seed from ``seed/catalog/catalog.json``, and read the terms in force on a date."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from pmo.accounts.permissions import Actor, Permission, can
from pmo.audit import service as audit
from pmo.catalog.models import (
    CatalogVersion,
    CompletionField,
    FieldType,
    Milestone,
    Subtask,
    SubtaskTerms,
    WorkItem,
)
from pmo.core import clock
from pmo.core.errors import NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.orgs.models import BodyKind

ALL_KINDS = ("prefecture", "municipality", "union")


def seed_catalog(session: Session, seed_dir: Path) -> dict[str, int]:
    """Insert the catalog, milestones and the first version's terms if missing (idempotent)."""
    data = json.loads((seed_dir / "catalog" / "catalog.json").read_text(encoding="utf-8"))
    created = 0
    milestones = {m.code: m for m in session.scalars(select(Milestone))}
    for spec in data["milestones"]:
        if spec["code"] not in milestones:
            milestone = Milestone(code=spec["code"], name=spec["name"], due_date=dt.date.fromisoformat(spec["due_date"]))
            session.add(milestone)
            milestones[spec["code"]] = milestone
            created += 1
    session.flush()
    version = session.scalar(select(CatalogVersion).order_by(CatalogVersion.effective_from).limit(1))
    if version is None:
        version = CatalogVersion(
            effective_from=dt.date.fromisoformat(data["version"]["effective_from"]),
            note=data["version"]["note"], created_dt=clock.now(),
        )
        session.add(version)
        session.flush()
    have_terms = {t.subtask_id for t in version.terms}
    order = 0
    for item_order, item_spec in enumerate(data["work_items"], start=1):
        item = session.scalar(select(WorkItem).where(WorkItem.code == item_spec["code"]))
        if item is None:
            item = WorkItem(code=item_spec["code"], name=item_spec["name"], sort_order=item_order)
            session.add(item)
            session.flush()
            created += 1
        applies = set(item_spec.get("applies", ALL_KINDS))
        for sub_spec in item_spec["subtasks"]:
            order += 1
            subtask = session.scalar(select(Subtask).where(Subtask.code == sub_spec["code"]))
            if subtask is None:
                subtask = Subtask(
                    code=sub_spec["code"], work_item_id=item.id, seq=int(sub_spec["code"].split("-")[1]),
                    name=sub_spec["name"], note=sub_spec.get("note"), sort_order=order,
                )
                session.add(subtask)
                session.flush()
                created += 1
                for field_order, field in enumerate(sub_spec.get("fields", []), start=1):
                    session.add(CompletionField(
                        subtask_id=subtask.id, code=field["code"], label=field["label"],
                        field_type=FieldType(field["type"]), choices=field.get("choices"),
                        required=field.get("required", True), sort_order=field_order,
                    ))
            if subtask.id not in have_terms:
                sub_applies = set(sub_spec.get("applies", applies))
                session.add(SubtaskTerms(
                    version_id=version.id, subtask_id=subtask.id, milestone_id=milestones[sub_spec["milestone"]].id,
                    applies_prefecture="prefecture" in sub_applies, applies_municipality="municipality" in sub_applies,
                    applies_union="union" in sub_applies,
                ))
                created += 1
    session.flush()
    return {"created": created}


@dataclass(frozen=True)
class SubtaskView:
    """A sub-task with the terms in force on a date: what screens, imports and delay rules read."""

    id: int
    code: str
    name: str
    note: str | None
    item_code: str
    item_name: str
    seq: int
    sort_order: int
    milestone_code: str
    milestone_name: str
    milestone_date: dt.date
    applies_prefecture: bool
    applies_municipality: bool
    applies_union: bool
    predecessor_id: int | None

    def applies_to(self, kind: BodyKind) -> bool:
        if kind is BodyKind.PREFECTURE:
            return self.applies_prefecture
        if kind is BodyKind.UNION:
            return self.applies_union
        return self.applies_municipality


def version_on(session: Session, on: dt.date) -> CatalogVersion:
    """Return the catalog version in force on ``on`` (the first one for dates before it)."""
    version = session.scalar(
        select(CatalogVersion).where(CatalogVersion.effective_from <= on)
        .order_by(CatalogVersion.effective_from.desc()).limit(1)
    )
    if version is None:
        version = session.scalar(select(CatalogVersion).order_by(CatalogVersion.effective_from).limit(1))
    if version is None:
        raise LookupError("the catalog has not been seeded")
    return version


def subtasks_on(session: Session, on: dt.date) -> list[SubtaskView]:
    """Return every sub-task with its terms as of ``on``, in catalog order.

    One joined query over plain columns: every plan screen, import and summary starts here, so
    it must stay cheap (no ORM objects).
    """
    version = version_on(session, on)
    rows = session.execute(
        select(Subtask.id, Subtask.code, Subtask.name, Subtask.note, WorkItem.code, WorkItem.name, Subtask.seq,
               Subtask.sort_order, Milestone.code, Milestone.name, Milestone.due_date, SubtaskTerms.applies_prefecture,
               SubtaskTerms.applies_municipality, SubtaskTerms.applies_union, SubtaskTerms.predecessor_id)
        .join(Subtask, Subtask.id == SubtaskTerms.subtask_id)
        .join(WorkItem, WorkItem.id == Subtask.work_item_id)
        .join(Milestone, Milestone.id == SubtaskTerms.milestone_id)
        .where(SubtaskTerms.version_id == version.id)
        .order_by(Subtask.sort_order)
    )
    return [SubtaskView(*row) for row in rows]


def work_items(session: Session) -> list[WorkItem]:
    """Return the work items with their sub-tasks and completion fields (the catalog screen shows all)."""
    return list(session.scalars(select(WorkItem).order_by(WorkItem.sort_order).options(
        selectinload(WorkItem.subtasks).selectinload(Subtask.completion_fields))))


# --- editing: every change of terms is a new dated version ---------------------------------------


@dataclass(frozen=True)
class TermsInput:
    """What an admin sets for one sub-task in a new version."""

    milestone_id: int
    applies_prefecture: bool
    applies_municipality: bool
    applies_union: bool


def latest_version(session: Session) -> CatalogVersion:
    version = session.scalar(select(CatalogVersion).order_by(CatalogVersion.effective_from.desc()).limit(1))
    if version is None:
        raise LookupError("the catalog has not been seeded")
    return version


def _check_effective(session: Session, effective_from: dt.date) -> list[Problem]:
    latest = latest_version(session)
    problems = []
    if effective_from < clock.today():
        problems.append(Problem("effective_from", "適用開始日に過去の日付は指定できません（過去の計画・実績の意味が変わるため）。"))
    if effective_from <= latest.effective_from:
        problems.append(Problem(
            "effective_from",
            f"適用開始日は現行の版（{latest.effective_from.year}年{latest.effective_from.month}月{latest.effective_from.day}日適用）より後にしてください。",
        ))
    return problems


def create_version(session: Session, actor: Actor, effective_from: dt.date, note: str,
                   terms: dict[int, TermsInput]) -> CatalogVersion:
    """Create a new catalog version from ``effective_from``: the latest terms, with ``terms`` applied."""
    if not can(actor, Permission.CATALOG_EDIT):
        raise PermissionDenied("カタログを編集する権限がありません。")
    problems = _check_effective(session, effective_from)
    if not (note or "").strip():
        problems.append(Problem("note", "変更の内容（版の説明）を入力してください。"))
    milestones = {m.id for m in session.scalars(select(Milestone))}
    for subtask_id, item in terms.items():
        if item.milestone_id not in milestones:
            problems.append(Problem(f"milestone_{subtask_id}", "マイルストーンを選択してください。"))
    if problems:
        raise ValidationFailed(problems)
    latest = latest_version(session)
    version = CatalogVersion(effective_from=effective_from, note=note.strip(), created_dt=clock.now(),
                             created_by_id=actor.user_id or None)
    session.add(version)
    session.flush()
    changed = []
    for old in latest.terms:
        new = terms.get(old.subtask_id)
        values = {
            "milestone_id": new.milestone_id if new else old.milestone_id,
            "applies_prefecture": new.applies_prefecture if new else old.applies_prefecture,
            "applies_municipality": new.applies_municipality if new else old.applies_municipality,
            "applies_union": new.applies_union if new else old.applies_union,
        }
        if any(getattr(old, k) != v for k, v in values.items()):
            changed.append(old.subtask_id)
        session.add(SubtaskTerms(version_id=version.id, subtask_id=old.subtask_id, predecessor_id=old.predecessor_id,
                                 **values))
    session.flush()
    audit.record(session, actor, "catalog.version_created", target=version,
                 after={"effective_from": effective_from, "note": note, "changed_subtasks": changed})
    return version


def change_milestone_date(session: Session, actor: Actor, milestone_id: int, new_date: dt.date,
                          effective_from: dt.date, note: str) -> CatalogVersion:
    """Move a milestone: a new Milestone row and a new version pointing to it; the old row is kept."""
    if not can(actor, Permission.CATALOG_EDIT):
        raise PermissionDenied("カタログを編集する権限がありません。")
    old = session.get(Milestone, milestone_id)
    if old is None:
        raise NotFound("マイルストーンが見つかりません。")
    problems = _check_effective(session, effective_from)
    if new_date == old.due_date:
        problems.append(Problem("due_date", "現在と同じ日付です。"))
    if problems:
        raise ValidationFailed(problems)
    base = old.code.split("@")[0]
    count = session.scalar(select(func.count()).select_from(Milestone).where(Milestone.code.like(f"{base}@%"))) or 0
    milestone = Milestone(code=f"{base}@{count + 2}", name=old.name, due_date=new_date,
                          description=f"{old.due_date.isoformat()} から変更: {note}")
    session.add(milestone)
    session.flush()
    latest = latest_version(session)
    terms = {
        t.subtask_id: TermsInput(milestone.id if t.milestone_id == old.id else t.milestone_id,
                                 t.applies_prefecture, t.applies_municipality, t.applies_union)
        for t in latest.terms
    }
    version = create_version(session, actor, effective_from,
                             note or f"{old.name}を{new_date.isoformat()}に変更", terms)
    audit.record(session, actor, "catalog.milestone_moved", target=milestone,
                 before={"due_date": old.due_date, "milestone_id": old.id},
                 after={"due_date": new_date, "milestone_id": milestone.id, "version": version.id})
    return version


def add_completion_field(session: Session, actor: Actor, subtask_id: int, label: str, field_type: str,
                         required: bool, choices: list[str] | None = None) -> CompletionField:
    """Add a completion item to a sub-task (existing values keep their meaning)."""
    if not can(actor, Permission.CATALOG_EDIT):
        raise PermissionDenied("カタログを編集する権限がありません。")
    subtask = session.get(Subtask, subtask_id)
    if subtask is None:
        raise NotFound("サブタスクが見つかりません。")
    label = (label or "").strip()
    problems = []
    if not label or len(label) > 100:
        problems.append(Problem("label", "項目名を100文字以内で入力してください。"))
    try:
        kind = FieldType(field_type)
    except ValueError:
        kind = FieldType.TEXT
        problems.append(Problem("field_type", "種類を選択してください。"))
    if kind is FieldType.CHOICE and not choices:
        problems.append(Problem("choices", "選択肢を1つ以上入力してください。"))
    if problems:
        raise ValidationFailed(problems)
    code = f"f{len(subtask.completion_fields) + 1}_{secrets.token_hex(2)}"
    field = CompletionField(subtask_id=subtask.id, code=code, label=label, field_type=kind,
                            choices=choices if kind is FieldType.CHOICE else None, required=required,
                            sort_order=len(subtask.completion_fields) + 1)
    session.add(field)
    session.flush()
    audit.record(session, actor, "catalog.field_added", target=field,
                 after={"subtask": subtask.code, "label": label, "type": kind.value, "required": required})
    return field


def versions(session: Session) -> list[CatalogVersion]:
    return list(session.scalars(select(CatalogVersion).order_by(CatalogVersion.effective_from.desc())))


def milestones(session: Session) -> list[Milestone]:
    return list(session.scalars(select(Milestone).order_by(Milestone.due_date, Milestone.id)))
