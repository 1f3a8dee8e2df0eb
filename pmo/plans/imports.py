"""The Excel/CSV round-trip of plans: export one body or the nation, import all-or-nothing.

An import runs in two steps. ``validate_upload`` reads the file, checks every row and computes a
preview (created / updated / unchanged per body); nothing is written but the ImportJob. Any problem
rejects the whole file with every problem listed. ``commit_import`` applies the checked rows in the
caller's one transaction (bulk statements), writes a PlanRevision per changed plan and one audit
entry. Flask-free; the boundary commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from pmo.accounts.permissions import Actor, BodyRef, Permission, can
from pmo.audit import service as audit
from pmo.catalog.models import CompletionField
from pmo.catalog.service import subtasks_on
from pmo.core import clock, files, my_number
from pmo.core.dates import DateInputError, PartialDate, parse_date_input
from pmo.core.errors import NotFound, PermissionDenied
from pmo.core.tabular import (
    DateValidation,
    ListValidation,
    SheetSpec,
    TableError,
    TableProblem,
    open_table,
    write_csv,
    write_xlsx,
)
from pmo.orgs.models import Body, BodyKind
from pmo.plans import rules
from pmo.plans.bulk import bulk_insert
from pmo.plans.models import CompletionValue, DatePrecision, ImportJob, ImportStatus, Plan, PlanRevision
from pmo.plans.rules import PlanValues
from pmo.plans.service import column_values, get_body

HEADERS = ["団体コード", "団体名", "サブタスク", "計画開始日", "計画終了日", "実績開始日", "実績終了日", "進捗率",
           "対象外理由", "備考"]
COLUMN_OF = {"planned_start": "計画開始日", "planned_end": "計画終了日", "actual_start": "実績開始日",
             "actual_end": "実績終了日", "progress": "進捗率", "not_applicable_reason": "対象外理由", "comment": "備考"}
FIELD_OF = {v: k for k, v in COLUMN_OF.items()}
SHEET_NAME = "計画・実績"
MAX_BYTES = 40 * 1024 * 1024
MAX_ROWS = 120_000
STALE_AFTER = dt.timedelta(minutes=2)
DUPLICATE_WARNING = "同一ファイルは取込済みです。"

INSTRUCTIONS = [
    "デジタルPMO 計画・実績 一括入力シートの記入方法",
    "",
    "1. 「計画・実績」シートの各行が、1団体の1サブタスクです。団体コード・サブタスクの列は変更しないでください。",
    "2. 日付は 2015/10/1、2015-10-01、平成27年10月1日、H27.10.1 のいずれでも入力できます。",
    "   月までしか決まっていない場合は「2015-10」のように文字列で入力してください（開始は月初、終了は月末とみなします）。",
    "3. 実績開始日・実績終了日には今日より後の日付は入力できません。終了日は開始日以降にしてください。",
    "4. 進捗率は0〜100の整数です（空欄可）。",
    "5. 対象外とする場合は「対象外理由」に理由を入力してください。理由が入っている行は対象外として扱います。",
    "6. 団体名の列は確認用で、取り込みません。",
    "7. 取込では、まず内容を確認する画面（新規・更新・変更なしの件数）が表示され、確定するまで反映されません。",
    "   誤りが1件でもあるとファイル全体を取り込まず、すべての誤り（シート・行・列・値・内容）を一覧で表示します。",
    "8. CSVで保存する場合は UTF-8（BOM付き）または Shift_JIS（CP932）で保存してください。",
    "9. 完了時の入力項目（評価書公表日など）とベンダー名は、画面から入力してください。",
]

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _BodyRow:
    id: int
    code: str
    name: str
    kind: BodyKind
    prefecture_code: str


# --- export -------------------------------------------------------------------------------------


def _cell(value: PartialDate | None, for_xlsx: bool) -> Any:
    if value is None:
        return None
    if value.precision == "month" or not for_xlsx:
        return value.isoformat()  # '2015-10' stays text so the month precision survives the round-trip
    return value.value


def export_rows(session: Session, actor: Actor, body_code: str | None, for_xlsx: bool = True,
                progress: Progress | None = None) -> Iterator[list[Any]]:
    """Yield the rows of one body (``body_code``) or of every body the actor may see."""
    today = clock.today()
    subtasks = subtasks_on(session, today)
    if body_code is not None:
        bodies = [get_body(session, actor, body_code, Permission.PLAN_VIEW)]
    else:
        if not can(actor, Permission.PLAN_IMPORT_NATIONAL) and not can(actor, Permission.PLAN_VIEW):
            raise PermissionDenied("全国の計画を出力する権限がありません。")
        # Plain columns, not ORM objects: a progress callback may commit the session mid-way.
        bodies = [b for b in (_BodyRow(*r) for r in session.execute(
            select(Body.id, Body.code, Body.name, Body.kind, Body.prefecture_code).order_by(Body.code)))
            if can(actor, Permission.PLAN_VIEW, BodyRef(b.id, b.code, b.prefecture_code, b.kind is BodyKind.PREFECTURE))]
    wanted = {b.id for b in bodies}
    plans: dict[tuple[int, int], tuple] = {}
    stmt = select(Plan.body_id, Plan.subtask_id, *[getattr(Plan, c) for c in _PLAN_COLUMNS])
    if body_code is not None:
        stmt = stmt.where(Plan.body_id == bodies[0].id)
    for row in session.execute(stmt):
        if row[0] in wanted:
            plans[(row[0], row[1])] = row[2:]
    total = len(bodies)
    for n, body in enumerate(bodies, start=1):
        for st in subtasks:
            if not st.applies_to(body.kind):
                continue
            v = _values_from_columns(plans.get((body.id, st.id)))
            yield [body.code, body.name, st.code, _cell(v.planned_start, for_xlsx), _cell(v.planned_end, for_xlsx),
                   _cell(v.actual_start, for_xlsx), _cell(v.actual_end, for_xlsx), v.progress,
                   v.not_applicable_reason, v.comment]
        if progress and (n % 50 == 0 or n == total):
            progress(n, total)


_PLAN_COLUMNS = ("planned_start", "planned_start_precision", "planned_end", "planned_end_precision",
                 "actual_start", "actual_start_precision", "actual_end", "actual_end_precision",
                 "progress", "not_applicable_reason", "comment", "vendor", "id", "version")


def _values_from_columns(cols: tuple | None, completion: tuple[tuple[str, str], ...] = ()) -> PlanValues:
    if cols is None:
        return PlanValues()
    dates = {}
    for i, name in enumerate(rules.DATE_FIELDS):
        value, precision = cols[2 * i], cols[2 * i + 1]
        dates[name] = PartialDate(value, precision.value) if value is not None else None
    return PlanValues(**dates, progress=cols[8], not_applicable_reason=cols[9], comment=cols[10], vendor=cols[11],
                      completion=completion)


def export_file(session: Session, actor: Actor, body_code: str | None, fmt: str = "xlsx",
                progress: Progress | None = None) -> bytes:
    """Write the plans as .xlsx (instructions, validations, locked header) or CSV (utf-8-sig / cp932)."""
    if fmt == "xlsx":
        spec = SheetSpec(
            SHEET_NAME, HEADERS, export_rows(session, actor, body_code, True, progress),
            column_widths=[10, 22, 10, 13, 13, 13, 13, 8, 30, 40], protect_header=True,
            validations=[DateValidation(h, dt.date(2010, 1, 1), dt.date(2030, 12, 31),
                                        error="日付（例: 2015/10/1）を入力してください。月までの場合は記入方法シートを参照してください。")
                         for h in HEADERS[3:7]]
            + [ListValidation("進捗率", [str(n) for n in range(0, 101, 10)], error="0〜100の整数を入力してください。")],
        )
        return write_xlsx([spec], INSTRUCTIONS)
    encoding = "cp932" if fmt == "cp932" else "utf-8-sig"
    return write_csv(HEADERS, export_rows(session, actor, body_code, False, progress), encoding=encoding)


EXPORT_KIND = "plans_export"


def start_export_job(session: Session, actor: Actor, batch_id: str, filename: str) -> ImportJob | None:
    """Record a national export so its progress can be polled (an ImportJob of kind plans_export).

    None when the id is taken (a reloaded link): the export then runs without a progress record.
    """
    if not can(actor, Permission.PLAN_IMPORT_NATIONAL):
        raise PermissionDenied("全国の計画を出力する権限がありません。")
    if session.scalar(select(ImportJob.id).where(ImportJob.batch_id == batch_id)) is not None:
        return None
    now = clock.now()
    job = ImportJob(batch_id=batch_id, kind=EXPORT_KIND, filename=filename, sha256="", user_id=actor.user_id or None,
                    status=ImportStatus.RUNNING, phase="export", national=True, created_dt=now, heartbeat_dt=now)
    session.add(job)
    session.flush()
    return job


def finish_export_job(job: ImportJob, size: int) -> None:
    job.status = ImportStatus.DONE
    job.finished_dt = clock.now()
    job.processed_rows = job.total_rows
    job.counts = {"bytes": size}


# --- validation and preview --------------------------------------------------------------------


@dataclass
class ParsedRow:
    body_id: int
    subtask_id: int
    values: list[Any]  # _pack(): the file's columns


@dataclass
class Preview:
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> name, created, updated, unchanged
    rows: list[ParsedRow] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        out = {"created": 0, "updated": 0, "unchanged": 0}
        for counts in self.bodies.values():
            for key in out:
                out[key] += counts[key]
        return out


def _norm_code(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if isinstance(value, int) and text.isdigit():
        text = text.zfill(6)  # Excel turned 012033 into the number 12033
    return text


def _norm_subtask(value: Any) -> str:
    text = unicodedata.normalize("NFKC", str(value or "")).strip().upper()
    return text.replace("ー", "-").replace("−", "-").replace("－", "-")


class _DateMemo:
    """``parse_date_input`` remembered per distinct cell value: a national file repeats a few hundred dates."""

    def __init__(self) -> None:
        self.known: dict[tuple[type, Any], PartialDate | DateInputError | None] = {}

    def __call__(self, value: Any) -> PartialDate | None:
        if value is None:
            return None
        key = (value.__class__, value)
        found = self.known.get(key, _MISSING)
        if found is _MISSING:
            try:
                found = parse_date_input(value)
            except DateInputError as exc:
                found = exc
            self.known[key] = found
        if isinstance(found, DateInputError):
            raise found
        return found  # type: ignore[return-value]


_MISSING = object()


def _may_import(actor: Actor, body: Body | _BodyRow, national: bool) -> bool:
    ref = BodyRef(body.id, body.code, body.prefecture_code, body.kind is BodyKind.PREFECTURE)
    if national:
        return can(actor, Permission.PLAN_IMPORT_NATIONAL, ref) or can(actor, Permission.PLAN_EDIT, ref)
    return can(actor, Permission.PLAN_EDIT, ref)


def _existing(session: Session, body_ids: set[int] | None) -> dict[tuple[int, int], tuple]:
    stmt = select(Plan.body_id, Plan.subtask_id, *[getattr(Plan, c) for c in _PLAN_COLUMNS])
    if body_ids is not None and len(body_ids) < 500:
        stmt = stmt.where(Plan.body_id.in_(body_ids))
    return {(r[0], r[1]): r[2:] for r in session.execute(stmt)}


def _completion_items(session: Session, body_ids: set[int]) -> dict[int, tuple[tuple[str, str], ...]]:
    """Each stored plan's completion items as ``PlanValues.completion`` holds them (code, text), sorted."""
    stmt = (select(CompletionValue.plan_id, CompletionField.code, CompletionValue.value)
            .join(CompletionField, CompletionField.id == CompletionValue.field_id)
            .join(Plan, Plan.id == CompletionValue.plan_id)
            .where(CompletionValue.value.is_not(None), CompletionValue.value != ""))
    if len(body_ids) < 500:
        stmt = stmt.where(Plan.body_id.in_(body_ids))
    found: dict[int, list[tuple[str, str]]] = {}
    for plan_id, code, value in session.execute(stmt):
        found.setdefault(plan_id, []).append((code, value))
    return {plan_id: tuple(sorted(items)) for plan_id, items in found.items()}


def validate_rows(session: Session, actor: Actor, data: bytes, filename: str, national: bool,
                  progress: Progress | None = None) -> Preview:
    """Read and check every row; raise ``TableError`` listing every problem, else return the preview."""
    today = clock.today()
    subtasks = {s.code: s for s in subtasks_on(session, today)}
    bodies = {r[1]: _BodyRow(*r) for r in session.execute(
        select(Body.id, Body.code, Body.name, Body.kind, Body.prefecture_code))}
    parse_date = _DateMemo()
    codes: dict[tuple[type, Any, int], str] = {}  # normalised body and sub-task codes, per distinct cell value
    problems: list[TableProblem] = []
    seen: dict[tuple[int, int], int] = {}
    allowed: dict[int, bool] = {}
    existing = _existing(session, None if national or actor.body is None else {actor.body.id})
    preview = Preview()
    accepted = 0
    with open_table(data, filename, HEADERS, max_rows=MAX_ROWS) as reader:
        sheet = reader.sheet
        total_hint = max(len(data) // 60, 1) if filename.lower().endswith(".csv") else 0
        for count, row in enumerate(reader, start=1):
            number = row.row_number
            raw_code = row["団体コード"]
            code = codes.get((raw_code.__class__, raw_code, 0))  # type: ignore[call-overload]
            if code is None:
                code = codes[(raw_code.__class__, raw_code, 0)] = _norm_code(raw_code)  # type: ignore[index]
            body = bodies.get(code)
            if body is None:
                shown = my_number.mask(raw_code if raw_code is not None else "")
                problems.append(TableProblem(sheet, number, "団体コード", shown, f"団体コード「{shown}」は登録されていません。"))
                continue
            if body.id not in allowed:
                allowed[body.id] = _may_import(actor, body, national)
            if not allowed[body.id]:
                problems.append(TableProblem(sheet, number, "団体コード", raw_code,
                                             f"{body.name}（{body.code}）の計画を取り込む権限がありません。"))
                continue
            raw_sub = row["サブタスク"]
            sub_code = codes.get((raw_sub.__class__, raw_sub, 1))  # type: ignore[call-overload]
            if sub_code is None:
                sub_code = codes[(raw_sub.__class__, raw_sub, 1)] = _norm_subtask(raw_sub)  # type: ignore[index]
            st = subtasks.get(sub_code)
            if st is None:
                shown = my_number.mask(raw_sub if raw_sub is not None else "")
                problems.append(TableProblem(sheet, number, "サブタスク", shown, f"サブタスク「{shown}」は存在しません（例: B-2）。"))
                continue
            if not st.applies_to(body.kind):
                problems.append(TableProblem(sheet, number, "サブタスク", raw_sub,
                                             f"サブタスク{st.code}は{body.kind.label}（{body.name}）には適用されません。"))
                continue
            key = (body.id, st.id)
            if key in seen:
                problems.append(TableProblem(sheet, number, "サブタスク", raw_sub,
                                             f"{body.name}の{st.code}の行が重複しています（{seen[key]}行目と同じ）。"))
                continue
            seen[key] = number
            raw = {name: row[column] for name, column in COLUMN_OF.items()}
            values, found = rules.parse_values(raw, parse_date=parse_date)
            found += rules.check_values(values, today, require_completion=False)
            for p in found:
                column = COLUMN_OF.get(p.field, p.field)
                # the cell is quoted in the problem report: a 個人番号 in it is masked (OPT-01)
                problems.append(TableProblem(sheet, number, column, my_number.mask(row.get(column)), p.message))
            if not found and not problems:
                accepted += 1
                _add_to_preview(preview, existing, body, st.id, values)
            if progress and count % 2000 == 0:
                progress(count, total_hint)
    if problems:
        raise TableError(problems)
    if progress:
        progress(accepted, accepted)
    return preview


def _add_to_preview(preview: Preview, existing: dict[tuple[int, int], tuple], body: _BodyRow, subtask_id: int,
                    values: PlanValues) -> None:
    """Count the row as created / updated / unchanged and keep it (packed) when it changes something.

    The file's columns are compared in their packed form with the stored row's (vendor and
    completion items are not in the file and are kept as stored).
    """
    counts = preview.bodies.get(body.code)
    if counts is None:
        counts = preview.bodies[body.code] = {"name": body.name, "created": 0, "updated": 0, "unchanged": 0}
    cols = existing.get((body.id, subtask_id))
    packed = _pack(values)
    if cols is None:
        if not any(v is not None for v in packed):
            counts["unchanged"] += 1
            return
        counts["created"] += 1
    elif packed == _pack_columns(cols):
        counts["unchanged"] += 1
        return
    else:
        counts["updated"] += 1
    preview.rows.append(ParsedRow(body.id, subtask_id, packed))


def _merge(values: PlanValues, current: PlanValues) -> PlanValues:
    """The file's columns over the stored plan; vendor and completion items are not in the file."""
    return PlanValues(values.planned_start, values.planned_end, values.actual_start, values.actual_end,
                      values.progress, values.not_applicable_reason, values.comment, current.vendor,
                      current.completion)


def _pack(values: PlanValues) -> list[Any]:
    """A compact JSON form of the file's columns (a 52,000-row preview stays small)."""
    out: list[Any] = []
    for name in rules.DATE_FIELDS:
        value: PartialDate | None = getattr(values, name)
        out.append(value.isoformat() if value else None)
    return out + [values.progress, values.not_applicable_reason, values.comment]


def _pack_columns(cols: tuple) -> list[Any]:
    """``_pack`` of a stored row's file columns, straight from the columns ``_existing`` reads."""
    out: list[Any] = []
    for i in range(0, 8, 2):
        value = cols[i]
        if value is None:
            out.append(None)
        elif cols[i + 1] is DatePrecision.MONTH:
            out.append(f"{value.year:04d}-{value.month:02d}")
        else:
            out.append(value.isoformat())
    return out + [cols[8], cols[9], cols[10]]


def _unpack(packed: list[Any], dates: dict[str, PartialDate] | None = None) -> PlanValues:
    """Read a packed row back; ``dates`` memoises the parsed ISO texts across rows."""
    known = {} if dates is None else dates
    parsed = []
    for text in packed[:4]:
        if not text:
            parsed.append(None)
            continue
        value = known.get(text)
        if value is None:
            value = known[text] = PartialDate.from_isoformat(text)
        parsed.append(value)
    return PlanValues(*parsed, progress=packed[4], not_applicable_reason=packed[5], comment=packed[6])


# --- jobs ---------------------------------------------------------------------------------------


def new_batch_id() -> str:
    return secrets.token_hex(10)


def start_job(session: Session, actor: Actor, data: bytes, filename: str, national: bool,
              batch_id: str | None = None) -> ImportJob:
    """Check the upload's content and record an ImportJob (status running, phase validate)."""
    if national and not can(actor, Permission.PLAN_IMPORT_NATIONAL):
        raise PermissionDenied("全国の計画を一括取込する権限がありません。")
    if not national and not can(actor, Permission.PLAN_EDIT):
        raise PermissionDenied("計画を取り込む権限がありません。")
    info = files.inspect_upload(data, filename, {"xlsx", "csv"}, MAX_BYTES)
    now = clock.now()
    job = ImportJob(
        batch_id=batch_id or new_batch_id(), kind="plans", filename=info.display_name, sha256=info.sha256,
        user_id=actor.user_id or None, body_id=None if national else (actor.body.id if actor.body else None),
        status=ImportStatus.RUNNING, phase="validate", national=national, created_dt=now, heartbeat_dt=now,
    )
    done_before = session.scalar(select(ImportJob.id).where(ImportJob.sha256 == info.sha256,
                                                            ImportJob.status == ImportStatus.DONE).limit(1))
    if done_before is not None:
        job.message = DUPLICATE_WARNING
    session.add(job)
    session.flush()
    return job


def validate_job(session: Session, actor: Actor, job: ImportJob, data: bytes, storage: Path,
                 progress: Progress | None = None) -> ImportJob:
    """Validate the upload into a preview (PREVIEWED) or a list of every problem (REJECTED)."""
    try:
        preview = validate_rows(session, actor, data, job.filename, job.national, progress)
    except TableError as exc:
        job.status = ImportStatus.REJECTED
        job.errors = [[p.sheet, p.row, p.column, None if p.value is None else str(p.value), p.message]
                      for p in exc.problems]
        job.finished_dt = clock.now()
        audit.record(session, actor, "plans.import_rejected", target=job, detail=f"{len(exc.problems)}件の誤り")
        session.flush()
        return job
    storage.mkdir(parents=True, exist_ok=True)
    path = storage / f"plans-import-{job.batch_id}.json"
    path.write_text(json.dumps([[r.body_id, r.subtask_id, r.values] for r in preview.rows], separators=(",", ":")),
                    encoding="utf-8")
    job.stored_path = path.name
    job.status = ImportStatus.PREVIEWED
    job.counts = {"bodies": preview.bodies, "totals": preview.totals()}
    job.total_rows = sum(sum(c[k] for k in ("created", "updated", "unchanged")) for c in preview.bodies.values())
    job.processed_rows = job.total_rows
    job.heartbeat_dt = clock.now()
    session.flush()
    return job


def get_job(session: Session, actor: Actor, batch_id: str, storage: Path | None = None) -> ImportJob:
    """Load an import job of the actor (national officers see every national job)."""
    job = session.scalar(select(ImportJob).where(ImportJob.batch_id == batch_id))
    if job is None:
        raise NotFound("取込処理が見つかりません。")
    if job.user_id != (actor.user_id or None) and not (job.national and can(actor, Permission.PLAN_IMPORT_NATIONAL)):
        raise NotFound("取込処理が見つかりません。")
    mark_if_stale(job, storage)
    return job


def mark_if_stale(job: ImportJob, storage: Path | None = None) -> bool:
    """Mark a running job whose heartbeat stopped as 中断 (its transaction never committed).

    The heartbeat is the newer of the job row's ``heartbeat_dt`` and the beat file in ``storage``
    (``apply_heartbeat``): on SQLite the applying transaction holds the write lock, so only the file
    can say that it is still alive.
    """
    beat = job.heartbeat_dt or job.created_dt
    if beat is not None and beat.tzinfo is None:
        beat = beat.replace(tzinfo=dt.UTC)
    if job.status is not ImportStatus.RUNNING:
        return False
    if storage is not None:
        in_file = _read_beat(storage, job.batch_id)
        if in_file is not None and (beat is None or in_file > beat):
            beat = in_file
    if beat is not None and clock.now() - beat > STALE_AFTER:
        job.status = ImportStatus.INTERRUPTED
        job.message = "処理が中断されました（データは変更されていません）。もう一度取り込んでください。"
        job.finished_dt = clock.now()
        return True
    return False


# --- the lease while an import is applied ----------------------------------------------------------


def staged_files(storage: Path, batch_id: str) -> tuple[Path, Path]:
    """The staged rows of a job and its beat file (both named after the batch)."""
    return storage / f"plans-import-{batch_id}.json", storage / f"plans-import-{batch_id}.beat"


def _read_beat(storage: Path, batch_id: str) -> dt.datetime | None:
    try:
        beat = dt.datetime.fromisoformat(staged_files(storage, batch_id)[1].read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None  # no beat file (not applying, or cleaned up), or one being replaced
    return beat if beat.tzinfo is not None else beat.replace(tzinfo=dt.UTC)


def _write_beat(storage: Path, batch_id: str) -> None:
    path = staged_files(storage, batch_id)[1]
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_text(clock.now().isoformat(), encoding="ascii")
    os.replace(part, path)  # a reader sees the old beat or the new one, never half of one


@contextlib.contextmanager
def apply_heartbeat(job: ImportJob, storage: Path, beat_row: Callable[[], None] | None = None) -> Iterator[None]:
    """Keep a confirmed job's lease alive from a thread while the caller applies and commits it.

    Every quarter of ``STALE_AFTER`` the thread writes the time to ``plans-import-<batch>.beat`` next
    to the staged rows and, when given, calls ``beat_row`` (PostgreSQL: ``heartbeat_dt`` from a second
    connection, seen by every server). A thread, not the progress callback: one slow statement or a
    wait for another import must not look like a dead process. A SIGKILL stops the thread with the
    process, so the lease still runs out (REL-05). The beat file is removed on the way out.
    """
    every = max(STALE_AFTER.total_seconds() / 4, 0.05)
    batch_id = job.batch_id
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                _write_beat(storage, batch_id)
                if beat_row is not None:
                    beat_row()
            except Exception:  # a missed beat only shortens the lease; the import goes on
                log.warning("heartbeat of import %s not written", batch_id, exc_info=True)

    storage.mkdir(parents=True, exist_ok=True)
    _write_beat(storage, batch_id)
    thread = threading.Thread(target=beat, name=f"import-heartbeat-{batch_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)  # a beat_row waits at most its lock timeout
        staged_files(storage, batch_id)[1].unlink(missing_ok=True)


def row_beat(open_session: Callable[[], contextlib.AbstractContextManager[Session]], job_id: int) -> Callable[[], None]:
    """A ``beat_row`` for ``apply_heartbeat``: the job's ``heartbeat_dt`` written and committed in a
    session of its own (PostgreSQL only: on SQLite the applying transaction holds the write lock)."""

    def beat() -> None:
        with open_session() as other:
            if other.get_bind().dialect.name == "postgresql":
                # the apply's own transaction locks the row at its end: skip a beat rather than wait
                other.execute(sql_text("SET LOCAL lock_timeout = '1s'"))
            other.execute(update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == ImportStatus.RUNNING)
                          .values(heartbeat_dt=clock.now()))
            other.commit()

    return beat


def discard_staged(storage: Path, *jobs: ImportJob) -> None:
    """Delete the staged rows (and beat file) of jobs that can no longer be confirmed (done,
    rejected, failed, or 中断 after a crash), so no temporary file outlives its import (REL-05)."""
    for job in jobs:
        if job.status in (ImportStatus.PREVIEWED, ImportStatus.RUNNING):
            continue
        names = {p.name for p in staged_files(storage, job.batch_id)}
        if job.stored_path:
            names.add(Path(job.stored_path).name)
        for name in names:
            (storage / name).unlink(missing_ok=True)


def sweep_staged(session: Session, storage: Path) -> int:
    """Mark every plan import whose lease ran out 中断 and delete staged files nobody can confirm.

    Covers what no page shows: imports run by ``pmo plans import`` (killed, they leave a running
    job), jobs older than the national page's list, and staged files without a job row (an import
    killed before its job was committed). The caller commits. Returns the number of files deleted.
    """
    running = list(session.scalars(select(ImportJob).where(ImportJob.kind == "plans",
                                                           ImportJob.status == ImportStatus.RUNNING)))
    for job in running:
        mark_if_stale(job, storage)
    if not storage.is_dir():
        return 0
    found: dict[str, list[Path]] = {}
    for path in storage.glob("plans-import-*"):
        batch = path.name.removeprefix("plans-import-").split(".", 1)[0]
        found.setdefault(batch, []).append(path)
    if not found:
        return 0
    status = dict(session.execute(select(ImportJob.batch_id, ImportJob.status)
                                  .where(ImportJob.batch_id.in_(list(found)))).all())
    old = time.time() - STALE_AFTER.total_seconds()  # file times are the machine's, not the portal clock's
    deleted = 0
    for batch, paths in found.items():
        state = status.get(batch)
        if state in (ImportStatus.PREVIEWED, ImportStatus.RUNNING):
            continue
        for path in paths:
            try:
                if state is None and path.stat().st_mtime > old:
                    continue  # a job row not committed yet: an import being set up right now
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                pass
    return deleted


def commit_job(session: Session, actor: Actor, job: ImportJob, storage: Path,
               progress: Progress | None = None) -> dict[str, int]:
    """Apply a previewed job in the caller's transaction: bulk writes, revisions, one audit entry."""
    startable = job.status is ImportStatus.PREVIEWED or (job.status is ImportStatus.RUNNING and job.phase == "apply")
    if not startable:
        raise NotFound("確定できる取込処理ではありません。")
    rows = json.loads((storage / (job.stored_path or "")).read_text(encoding="utf-8"))
    bodies = {b.id: b for b in session.scalars(select(Body).where(Body.id.in_({r[0] for r in rows})))} if rows else {}
    for body in bodies.values():
        if not _may_import(actor, body, job.national):
            raise PermissionDenied(f"{body.name}の計画を取り込む権限がありません。")
    existing = _existing(session, set(bodies))
    completion = _completion_items(session, set(bodies))  # kept as they are, and in each revision
    now = clock.now()
    user_id = actor.user_id or None
    job.phase = "apply"
    created = updated = 0
    chunk = 5000
    dates: dict[str, PartialDate] = {}
    for start in range(0, len(rows), chunk):
        creates: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        revisions: list[dict[str, Any]] = []
        for body_id, subtask_id, packed in rows[start:start + chunk]:
            cols = existing.get((body_id, subtask_id))
            current = _values_from_columns(cols, completion.get(cols[12], ()) if cols else ())
            values = _merge(_unpack(packed, dates), current)
            if values == current or (cols is None and values.is_empty):
                continue  # changed since the preview: nothing left to do
            record = column_values(values)
            record.update(updated_dt=now, updated_by_id=user_id)
            revision = {"body_id": body_id, "subtask_id": subtask_id, "after": values.to_json(), "recorded_dt": now,
                        "user_id": user_id, "channel": "import", "batch_id": job.batch_id}
            if cols is None:
                creates.append({**record, "body_id": body_id, "subtask_id": subtask_id, "version": 1})
                revision.update(plan_id=None, before=None)
            else:
                updates.append({**record, "id": cols[12], "version": cols[13] + 1})
                revision.update(plan_id=cols[12], before=current.to_json())
            revisions.append(revision)
        if updates:
            session.execute(update(Plan), updates)
        if creates:
            bulk_insert(session, Plan.__table__, creates)
            bodies_here = {c["body_id"] for c in creates}
            ids = {(b, st): pid for pid, b, st in session.execute(
                select(Plan.id, Plan.body_id, Plan.subtask_id).where(Plan.body_id.in_(bodies_here)))}
            for revision in revisions:
                if revision["plan_id"] is None:
                    revision["plan_id"] = ids[(revision["body_id"], revision["subtask_id"])]
        bulk_insert(session, PlanRevision.__table__, revisions)
        created += len(creates)
        updated += len(updates)
        if progress:
            progress(min(start + chunk, len(rows)), len(rows))
    counts = {"created": created, "updated": updated, "unchanged": job.total_rows - created - updated}
    job.status = ImportStatus.DONE
    job.finished_dt = clock.now()
    job.processed_rows = job.total_rows
    job.counts = {**(job.counts or {}), "applied": counts}
    audit.record(session, actor, "plans.imported", target=job, after={**counts, "file": job.filename},
                 detail=f"batch {job.batch_id}")
    session.flush()
    return counts


def errors_as_problems(job: ImportJob) -> list[TableProblem]:
    return [TableProblem(*e) for e in (job.errors or [])]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recent_jobs(session: Session, national: bool, user_id: int | None = None, limit: int = 10,
                storage: Path | None = None) -> list[ImportJob]:
    """The newest import jobs (national ones, or one user's), with stale ones marked 中断."""
    stmt = select(ImportJob).where(ImportJob.national.is_(national), ImportJob.kind == "plans")
    if user_id is not None:
        stmt = stmt.where(ImportJob.user_id == user_id)
    jobs = list(session.scalars(stmt.order_by(ImportJob.created_dt.desc()).limit(limit)))
    for job in jobs:
        mark_if_stale(job, storage)
    return jobs
