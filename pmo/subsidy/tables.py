"""Estimate files in and out: the template (xlsx/CSV) and reading an upload into rows.

Reading goes through ``pmo.core.tabular.read_table`` when the portal has it; until then a small
reader with the same contract (rows with their spreadsheet row number; every problem listed) is used.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from pmo.core.errors import Problem, ValidationFailed
from pmo.subsidy.service import ESTIMATE_HEADERS

TEMPLATE_EXAMPLE = [
    ("設計", "個人番号の項目追加に係る基本設計", "SE", 1000000, "人月", "2.5", 2500000),
    ("開発", "個人番号検索機能の開発", "PG", 800000, "人月", "3", 2400000),
    ("単体テスト", "単体テスト", "PG", 40000, "人日", "20", 800000),
]
MAX_BYTES = 2 * 1024 * 1024


def template_csv() -> bytes:
    """The estimate template as CSV (UTF-8 with BOM, so Excel opens it as UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ESTIMATE_HEADERS)
    writer.writerows(TEMPLATE_EXAMPLE)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx() -> bytes:
    """The estimate template as xlsx, with a sheet explaining each column."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "見積明細"
    ws.append(list(ESTIMATE_HEADERS))
    for row in TEMPLATE_EXAMPLE:
        ws.append(list(row))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for column, width in zip("ABCDEFG", (14, 40, 12, 12, 8, 8, 14)):
        ws.column_dimensions[column].width = width
    help_ws = wb.create_sheet("記入方法")
    for line in (
        ("列", "記入方法"),
        ("工程", "設計、開発、単体テスト、結合テスト、総合テスト、団体内連携テスト、総合運用テスト"),
        ("作業項目", "作業の内容（「一式」ではなく具体的に）"),
        ("作業者区分", "PM、SE、PG など"),
        ("単価", "円（単位あたり、整数）"),
        ("単位", "人月 または 人日"),
        ("工数", "単位の数（小数3桁まで）"),
        ("金額", "円（整数）。値引きは負の数"),
    ):
        help_ws.append(line)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _row_number(row: Any, default: int) -> int:
    if isinstance(row, Mapping) and "row_number" in row:
        return int(row["row_number"])
    return int(getattr(row, "row_number", default))


def _cells(row: Any) -> Mapping[str, Any]:
    for name in ("values", "cells", "data"):
        value = getattr(row, name, None)
        if isinstance(value, Mapping):
            return value
    return row if isinstance(row, Mapping) else {}


def read_estimate_file(data: bytes, filename: str) -> list[tuple[int, Mapping[str, Any]]]:
    """Read an uploaded estimate (xlsx or CSV) into (row number, cells by header); refuse wrong columns."""
    if len(data) > MAX_BYTES:
        raise ValidationFailed([Problem("file", f"{filename}: ファイルが大きすぎます（2MBまで）。")])
    try:
        from pmo.core import tabular  # type: ignore[attr-defined]
    except ImportError:
        tabular = None
    if tabular is not None:
        try:
            rows = tabular.read_table(data, filename, ESTIMATE_HEADERS)
        except tabular.TableError as exc:
            raise ValidationFailed([Problem(getattr(p, "field", "file"), getattr(p, "message", str(p)))
                                    for p in exc.problems]) from exc
        return [(_row_number(r, i + 2), _cells(r)) for i, r in enumerate(rows)]
    return _read_fallback(data, filename)


def _read_fallback(data: bytes, filename: str) -> list[tuple[int, Mapping[str, Any]]]:
    name = filename.lower()
    if name.endswith(".xlsx"):
        matrix = _xlsx_matrix(data, filename)
    elif name.endswith(".csv"):
        from pmo.subsidy.service import decode_upload

        matrix = list(csv.reader(io.StringIO(decode_upload(data, filename))))
    else:
        raise ValidationFailed([Problem("file", f"{filename}: xlsx か CSV のファイルを選んでください。")])
    if not matrix:
        raise ValidationFailed([Problem("file", f"{filename}: 中身がありません。")])
    header = [str(h or "").strip().lstrip("\ufeff") for h in matrix[0]]
    missing = [h for h in ESTIMATE_HEADERS if h not in header]
    unknown = [h for h in header if h and h not in ESTIMATE_HEADERS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"必要な列がありません: {'、'.join(missing)}")
        if unknown:
            parts.append(f"知らない列があります: {'、'.join(unknown)}")
        raise ValidationFailed([Problem(f"{filename} 1行目（見出し）",
                                        "；".join(parts) + f"。見出しは「{'、'.join(ESTIMATE_HEADERS)}」にしてください（テンプレートを使えます）。")])
    index = {h: header.index(h) for h in ESTIMATE_HEADERS}
    rows = []
    for number, values in enumerate(matrix[1:], start=2):
        rows.append((number, {h: (values[i] if i < len(values) else None) for h, i in index.items()}))
    return rows


def _xlsx_matrix(data: bytes, filename: str) -> Sequence[Sequence[Any]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ValidationFailed([Problem("file", f"{filename}: Excel（xlsx）ファイルとして読めません。")]) from exc
    ws = wb.worksheets[0]
    matrix = [list(r) for r in ws.iter_rows(values_only=True)]
    wb.close()
    return matrix
