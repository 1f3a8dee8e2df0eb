"""Catalog use cases: seed from ``seed/catalog/catalog.json``, and read the terms in force on a date."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

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
    """Return every sub-task with its terms as of ``on``, in catalog order."""
    version = version_on(session, on)
    rows = session.scalars(
        select(SubtaskTerms).where(SubtaskTerms.version_id == version.id)
        .options(selectinload(SubtaskTerms.subtask).selectinload(Subtask.work_item), selectinload(SubtaskTerms.milestone))
    )
    views = [
        SubtaskView(
            id=t.subtask.id, code=t.subtask.code, name=t.subtask.name, note=t.subtask.note,
            item_code=t.subtask.work_item.code, item_name=t.subtask.work_item.name, seq=t.subtask.seq,
            sort_order=t.subtask.sort_order, milestone_code=t.milestone.code, milestone_name=t.milestone.name,
            milestone_date=t.milestone.due_date, applies_prefecture=t.applies_prefecture,
            applies_municipality=t.applies_municipality, applies_union=t.applies_union,
            predecessor_id=t.predecessor_id,
        )
        for t in rows
    ]
    return sorted(views, key=lambda v: v.sort_order)


def work_items(session: Session) -> list[WorkItem]:
    return list(session.scalars(select(WorkItem).order_by(WorkItem.sort_order)))
