"""Estimate files in and out: the template (xlsx/CSV) and reading an upload into rows, through
``pmo.core.files`` (content checks) and ``pmo.core.tabular`` (headers, row numbers, safe cells)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pmo.core import files, tabular
from pmo.core.errors import Problem, ValidationFailed
from pmo.subsidy.rules import Phase
from pmo.subsidy.service import ESTIMATE_HEADERS

TEMPLATE_EXAMPLE = [
    ("設計", "個人番号の項目追加に係る基本設計", "SE", 1000000, "人月", "2.5", 2500000),
    ("開発", "個人番号検索機能の開発", "PG", 800000, "人月", "3", 2400000),
    ("単体テスト", "単体テスト", "PG", 40000, "人日", "20", 800000),
]
INSTRUCTIONS = [
    "1行に1つの作業を書きます（「システム改修費一式」のような一式計上は避けてください）。",
    f"工程: {'、'.join(Phase)}",
    "作業者区分: PM、SE、PG など。単価は円（整数）、単位は「人月」か「人日」、工数は小数3桁まで。",
    "金額は円（整数）。値引きは負の数で書きます。",
]
MAX_BYTES = 2 * 1024 * 1024


def template_csv() -> bytes:
    """The estimate template as CSV (UTF-8 with BOM, so Excel opens it as UTF-8)."""
    return tabular.write_csv(ESTIMATE_HEADERS, TEMPLATE_EXAMPLE)


def template_xlsx() -> bytes:
    """The estimate template as xlsx, with a drop-down of 工程 and 単位 and a 記入方法 sheet."""
    spec = tabular.SheetSpec(
        "見積明細", ESTIMATE_HEADERS, TEMPLATE_EXAMPLE, column_widths=(14, 40, 12, 12, 8, 8, 14),
        validations=(tabular.ListValidation("工程", [p.value for p in Phase]),
                     tabular.ListValidation("単位", ["人月", "人日"])),
    )
    return tabular.write_xlsx([spec], INSTRUCTIONS)


def read_estimate_file(data: bytes, filename: str) -> list[tuple[int, Mapping[str, Any]]]:
    """Read an uploaded estimate (xlsx or CSV) into (row number, cells by header); refuse wrong columns.

    Raises ValidationFailed with the file name, row and column of every problem.
    """
    try:
        info = files.inspect_upload(data, filename, {"xlsx", "csv"}, MAX_BYTES)
    except files.UploadRejected as exc:
        raise ValidationFailed([Problem("file", exc.message)]) from exc
    shown = info.display_name
    try:
        table = tabular.read_table(data, filename, ESTIMATE_HEADERS, strict_order=False, max_rows=2000)
    except tabular.TableError as exc:
        raise ValidationFailed([Problem(f"{shown} {p.location_ja()}".strip(), p.message) for p in exc.problems]) from exc
    return [(row.row_number, row) for row in table.rows]
