"""Procedures catalog use cases: seeding from seed/procedures/, filtering, exports, data sets."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from pmo.accounts.permissions import Actor, Permission, can
from pmo.audit import service as audit
from pmo.core import clock
from pmo.core.errors import NotFound, PermissionDenied, Problem, ValidationFailed
from pmo.core.files import UploadRejected, inspect_upload
from pmo.core.tabular import SheetSpec, write_csv, write_xlsx
from pmo.documents.storage import FileStore
from pmo.procedures.models import Dataset, DatasetVersion, OrdinanceItem, Procedure
from pmo.search import service as search

PROCEDURE_HEADERS = ["システム", "手続", "条項", "提出者", "提出先", "個人番号の記入", "情報連携の内容（例）",
                     "省略できる添付書類（例）", "出典"]
DATASET_KINDS = frozenset({"xlsx", "csv", "pdf", "zip"})
DATASET_MAX_BYTES = 30 * 1024 * 1024
NO_LINKAGE = {"", "－", "-", "―"}


def has_linkage(linkage: str) -> bool:
    """A procedure links information unless its cell is 「－」 (or only says the query is postponed)."""
    text = linkage.strip()
    return text not in NO_LINKAGE and not text.startswith("※当面、情報提供ネットワークシステムで照会する方式は見送る")


def seed_procedures(session: Session, seed_dir: Path) -> dict[str, int]:
    """Load seed/procedures/procedures.csv and ordinance_items.json (idempotent: replaced by key)."""
    folder = seed_dir / "procedures"
    created = updated = 0
    with open(folder / "procedures.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    existing = {(p.system, p.seq): p for p in session.scalars(select(Procedure))}
    for row in rows:
        key = (row["system"], int(row["seq"]))
        values = dict(field=row["field"], name=row["name"], article=row["article"], submitter=row["submitter"],
                      submit_to=row["submit_to"], number_entry=row["number_entry"], linkage=row["linkage"],
                      omissible=row["omissible"], has_linkage=has_linkage(row["linkage"]), source=row["source"])
        proc = existing.get(key)
        if proc is None:
            proc = Procedure(system=key[0], seq=key[1], **values)
            session.add(proc)
            created += 1
        elif any(getattr(proc, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(proc, k, v)
            updated += 1
        else:
            continue
        session.flush()
        search.enqueue(session, "procedure", proc.id)
    items = json.loads((folder / "ordinance_items.json").read_text(encoding="utf-8"))
    known = {o.seq: o for o in session.scalars(select(OrdinanceItem))}
    for item in items:
        row = known.get(item["seq"])
        if row is None:
            session.add(OrdinanceItem(**item))
        else:
            for k, v in item.items():
                setattr(row, k, v)
    session.flush()
    return {"procedures_created": created, "procedures_updated": updated, "ordinance_items": len(items)}


@dataclass(frozen=True)
class ProcedureFilter:
    system: str | None = None
    submit_to: str | None = None
    linkage: bool | None = None
    text: str | None = None


def systems(session: Session) -> list[str]:
    rows = session.execute(select(Procedure.system, func.min(Procedure.id)).group_by(Procedure.system))
    return [s for s, _ in sorted(rows.all(), key=lambda r: r[1])]


def destinations(session: Session) -> list[str]:
    return sorted(set(session.scalars(select(Procedure.submit_to))))


def list_procedures(session: Session, actor: Actor, flt: ProcedureFilter) -> list[Procedure]:
    if not can(actor, Permission.PROCEDURE_READ):
        raise PermissionDenied("事務・手続を閲覧する権限がありません。")
    stmt = select(Procedure)
    if flt.system:
        stmt = stmt.where(Procedure.system == flt.system)
    if flt.submit_to:
        stmt = stmt.where(Procedure.submit_to == flt.submit_to)
    if flt.linkage is not None:
        stmt = stmt.where(Procedure.has_linkage.is_(flt.linkage))
    if flt.text:
        like = f"%{flt.text.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Procedure.name.like(like), Procedure.linkage.like(like), Procedure.omissible.like(like)))
    return list(session.scalars(stmt.order_by(Procedure.id)))


def get_procedure(session: Session, actor: Actor, procedure_id: int) -> Procedure:
    proc = session.get(Procedure, procedure_id)
    if proc is None or not can(actor, Permission.PROCEDURE_READ):
        raise NotFound("手続が見つかりません。")
    return proc


def _rows(procs: list[Procedure]) -> Iterator[list[str]]:
    for p in procs:
        yield [p.system, p.name, p.article, p.submitter, p.submit_to, p.number_entry, p.linkage, p.omissible, p.source]


def export_csv(procs: list[Procedure]) -> bytes:
    return write_csv(PROCEDURE_HEADERS, _rows(procs))


def export_xlsx(procs: list[Procedure], items: list[OrdinanceItem]) -> bytes:
    sheets = [SheetSpec(name="番号利用事務・手続", headers=PROCEDURE_HEADERS, rows=_rows(procs),
                        column_widths={"手続": 30, "個人番号の記入": 36, "情報連携の内容（例）": 50,
                                       "省略できる添付書類（例）": 30})]
    if items:
        headers = list(ORDINANCE_HEADERS.values())
        sheets.append(SheetSpec(name="主務省令事項の整理（例）", headers=headers,
                                rows=([getattr(i, k) if not isinstance(getattr(i, k), bool) else ("○" if getattr(i, k) else "×")
                                       for k in ORDINANCE_HEADERS] for i in items)))
    return write_xlsx(sheets)


ORDINANCE_HEADERS = {
    "table1_item": "別表1項番", "table1_ordinance": "別表1省令（条・号）", "actor_legal": "主体（別表第1上欄）",
    "actor_actual": "主体（実際上の主体）", "affair": "事務（別表第1下欄）", "procedure": "具体的な手続",
    "basis_law": "手続根拠（法律）", "basis_ordinance": "手続根拠（省令）", "basis_notice": "手続根拠（告示・通知）",
    "in_table1": "別表第1の主務省令に規定", "in_table2": "別表第2の主務省令に規定", "table2_item": "別表2項番",
    "table2_branch": "別表2枝番", "information": "情報（別表第2第4欄）", "inquirer": "照会者",
    "provider": "提供者", "provider_actual": "提供者（実際上の提供主体）", "needed_information": "必要となる具体的な情報",
    "years": "必要となる情報の過年（度）分", "form_change": "政省令等の改正の要否", "linkage_start": "情報連携開始時期",
}


def ordinance_items(session: Session) -> list[OrdinanceItem]:
    return list(session.scalars(select(OrdinanceItem).order_by(OrdinanceItem.seq)))


# --- data sets ------------------------------------------------------------------------------------


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.updated_dt.desc())))


def get_dataset(session: Session, actor: Actor, dataset_id: int) -> Dataset:
    ds = session.get(Dataset, dataset_id)
    if ds is None or not can(actor, Permission.PROCEDURE_READ):
        raise NotFound("データセットが見つかりません。")
    return ds


def upload_dataset(session: Session, actor: Actor, store: FileStore, data: bytes, filename: str, note: str,
                   title: str | None = None, description: str = "", dataset_id: int | None = None) -> DatasetVersion:
    """Publish a data set's new version (or a new data set); older versions stay downloadable."""
    if dataset_id is not None:
        ds = get_dataset(session, actor, dataset_id)
        if not can(actor, Permission.DATASET_PUBLISH, ministry_id=ds.ministry_id):
            raise PermissionDenied("このデータセットを更新する権限がありません（登録した府省のみ）。")
    else:
        if actor.ministry_id is None or not can(actor, Permission.DATASET_PUBLISH, ministry_id=actor.ministry_id):
            raise PermissionDenied("データセットを登録する権限がありません。")
        if not (title or "").strip():
            raise ValidationFailed([Problem("title", "名称を入力してください。")])
        now = clock.now()
        ds = Dataset(title=title.strip(), description=description.strip(), ministry_id=actor.ministry_id,  # type: ignore[union-attr]
                     created_dt=now, updated_dt=now)
        session.add(ds)
    if not note.strip():
        raise ValidationFailed([Problem("change_note", "変更内容を入力してください。")])
    try:
        info = inspect_upload(data, filename, DATASET_KINDS, DATASET_MAX_BYTES)
    except UploadRejected as exc:
        raise ValidationFailed([Problem("file", exc.message)]) from exc
    number = max((v.number for v in ds.versions), default=0) + 1
    version = DatasetVersion(number=number, storage_key=store.put(data), display_name=info.display_name,
                             file_kind=info.kind, mime_type=info.mime_type, size=info.size, sha256=info.sha256,
                             change_note=note.strip(), uploaded_by_id=actor.user_id or None, uploaded_dt=clock.now())
    ds.versions.insert(0, version)
    ds.updated_dt = clock.now()
    session.flush()
    audit.record(session, actor, "dataset.version_added", target=ds,
                 after={"number": number, "sha256": info.sha256, "name": info.display_name})
    return version


# --- search ---------------------------------------------------------------------------------------


def search_doc(session: Session, procedure_id: int) -> Any:
    from pmo.documents.models import Field
    from pmo.search.engine import SearchDoc

    p = session.get(Procedure, procedure_id)
    if p is None:
        return None
    body = "\n".join([p.system, p.article, p.submitter, p.submit_to, p.number_entry, p.linkage, p.omissible])
    return SearchDoc(key=f"procedure:{p.id}", kind="procedure", id=p.id, title=f"{p.name}（{p.system}）", body=body,
                     summary=f"提出者：{p.submitter}／提出先：{p.submit_to}", url=f"/procedures/{p.id}",
                     field=Field(p.field).label, ministry="厚生労働省", visibility=frozenset({"bodies", "ministries"}))


def all_ids(session: Session) -> Iterator[int]:
    yield from session.scalars(select(Procedure.id).order_by(Procedure.id))
