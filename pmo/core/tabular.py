"""Excel (.xlsx) and CSV in and out, safely (SECURITY.md DATA-01, DATA-02, REL-03).

Reading streams rows (openpyxl read-only; csv over a text wrapper) so a 50,000-row file never
sits in memory as cells, matches headers after NFKC (half-width ｶﾅ headers match), and reports
every structural problem with the row number Excel shows. Writing never turns text into a
formula: xlsx text cells are forced to the string type, CSV text that a spreadsheet would
evaluate is prefixed with ``'``. Pure: no Flask, no database.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from xml.parsers import expat

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.reader.excel import ExcelReader
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel, from_ISO8601
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.datavalidation import DataValidation

from pmo.core import files
from pmo.core.dates import PartialDate

__all__ = [
    "DateValidation",
    "ExportEncodingError",
    "ListValidation",
    "PROBLEM_HEADERS",
    "Row",
    "SheetSpec",
    "Table",
    "TableError",
    "TableProblem",
    "TableReader",
    "guard_formula",
    "open_table",
    "problems_to_csv",
    "problems_to_xlsx",
    "read_table",
    "write_csv",
    "write_xlsx",
]

PROBLEM_HEADERS = ["シート", "行", "列", "値", "エラー内容"]
EXCEL_MAX_ROW = 1_048_576
EXCEL_MAX_CELL_CHARS = 32_767
_JST = dt.timezone(dt.timedelta(hours=9))


# ---------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableProblem:
    """One thing wrong in a file, located the way a user finds it in Excel.

    ``column`` is the header name when known, else the column letter; ``row`` is the Excel row
    number (the header row is 1); both are None for whole-file problems.
    """

    sheet: str | None
    row: int | None
    column: str | None
    value: Any
    message: str

    def location_ja(self) -> str:
        """Describe where the problem is, e.g. '5行目 列『金額』'."""
        parts = []
        if self.row is not None:
            parts.append(f"{self.row}行目")
        if self.column:
            parts.append(f"列『{self.column}』")
        return " ".join(parts)


class TableError(Exception):
    """A file could not be read as the expected table; ``problems`` lists every issue found."""

    def __init__(self, problems: Iterable[TableProblem]) -> None:
        self.problems = list(problems)
        shown = "；".join(
            f"{p.location_ja()}: {p.message}" if p.location_ja() else p.message for p in self.problems[:5]
        )
        more = f" ほか{len(self.problems) - 5}件" if len(self.problems) > 5 else ""
        super().__init__(f"ファイルに{len(self.problems)}件の問題があります。{shown}{more}")


def _problem(message: str, sheet: str | None = None, row: int | None = None,
             column: str | None = None, value: Any = None) -> TableError:
    return TableError([TableProblem(sheet, row, column, value, message)])


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


class Row(dict):
    """One data row: a dict of header → cell value, plus where it came from."""

    __slots__ = ("row_number", "sheet")

    def __init__(self, values: Mapping[str, Any], row_number: int, sheet: str) -> None:
        super().__init__(values)
        self.row_number = row_number
        self.sheet = sheet

    def __repr__(self) -> str:
        return f"Row(sheet={self.sheet!r}, row_number={self.row_number}, values={dict.__repr__(self)})"


@dataclass
class Table:
    """A whole table read into memory; use ``open_table`` for big files."""

    sheet: str
    headers: list[str]
    rows: list[Row] = field(default_factory=list)


def _norm_header(value: Any) -> str:
    """Normalise a header for matching: NFKC (ｶﾅ→カナ, full-width ASCII→ASCII), trimmed."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


_GUARDED_QUOTE = re.compile(r"'(?=[=+\-@\t\r\0])")


class TableReader:
    """Rows of one sheet or CSV file, header already checked, read lazily.

    Iterate once. Structural problems in a row (a value in a column without a header) raise
    ``TableError`` at that row; ``read_table`` instead collects them all.
    """

    def __init__(self, sheet: str, headers: list[str], rows: Iterator[tuple[int, Sequence[Any]]],
                 positions: list[tuple[int, str]], width: int, closer=None,
                 max_rows: int | None = None) -> None:
        self.sheet = sheet
        self.headers = headers
        self._rows = rows
        self._positions = positions
        self._width = width
        self._closer = closer
        self._max_rows = max_rows
        self._used = False

    def __enter__(self) -> TableReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the workbook (harmless to call twice)."""
        if self._closer is not None:
            closer, self._closer = self._closer, None
            closer()

    def __iter__(self) -> Iterator[Row]:
        return self._iterate(None)

    def _iterate(self, collect: list[TableProblem] | None) -> Iterator[Row]:
        if self._used:
            raise RuntimeError("a TableReader can be iterated only once")
        self._used = True
        count = 0
        try:
            for number, cells in self._rows:
                if all(v is None or (v.__class__ is str and not v.strip()) for v in cells):
                    continue
                stray = [
                    (i, v) for i, v in enumerate(cells[self._width:], start=self._width) if not _is_blank(v)
                ] if len(cells) > self._width else None
                if stray:
                    i, v = stray[0]
                    problem = TableProblem(self.sheet, number, get_column_letter(i + 1), v,
                                           "見出しのない列に値があります。")
                    if collect is None:
                        raise TableError([problem])
                    collect.append(problem)
                    continue
                count += 1
                if self._max_rows is not None and count > self._max_rows:
                    raise _problem(f"行数が上限（{self._max_rows:,}行）を超えています。", self.sheet, number)
                values = {name: (cells[i] if i < len(cells) else None) for i, name in self._positions}
                yield Row(values, number, self.sheet)
        finally:
            self.close()


def open_table(
    data: bytes,
    filename: str,
    expected_headers: Sequence[str],
    sheet: str | None = None,
    *,
    strict_order: bool = True,
    max_rows: int | None = None,
    limits: files.ZipLimits = files.DEFAULT_ZIP_LIMITS,
) -> TableReader:
    """Open an .xlsx or .csv, check its header row against ``expected_headers`` and return a
    lazy ``TableReader``.

    The header row is row 1. Each expected header must appear exactly once (after NFKC and
    trimming), no unknown header may appear, and with ``strict_order`` the order must match.
    Raises ``TableError`` listing every header problem, or a single problem for an unreadable
    file (with the row and column of an undecodable byte in a CSV).
    """
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext == "xlsx":
        sheet_name, header_cells, rows, closer = _open_xlsx(data, sheet, limits)
    elif ext == "csv":
        sheet_name, header_cells, rows, closer = _open_csv(data, filename)
    else:
        raise _problem("Excel（.xlsx）またはCSVファイルを指定してください。")
    try:
        headers, positions, width = _match_headers(sheet_name, header_cells, expected_headers, strict_order)
    except TableError:
        if closer:
            closer()
        raise
    return TableReader(sheet_name, headers, rows, positions, width, closer, max_rows)


def read_table(
    data: bytes,
    filename: str,
    expected_headers: Sequence[str],
    sheet: str | None = None,
    *,
    strict_order: bool = True,
    max_rows: int | None = None,
    limits: files.ZipLimits = files.DEFAULT_ZIP_LIMITS,
) -> Table:
    """Read a whole .xlsx/.csv into a ``Table``; raise one ``TableError`` listing every problem."""
    reader = open_table(data, filename, expected_headers, sheet, strict_order=strict_order,
                        max_rows=max_rows, limits=limits)
    problems: list[TableProblem] = []
    rows = list(reader._iterate(problems))
    if problems:
        raise TableError(problems)
    return Table(reader.sheet, reader.headers, rows)


def _match_headers(sheet: str, header_cells: Sequence[Any], expected: Sequence[str],
                   strict_order: bool) -> tuple[list[str], list[tuple[int, str]], int]:
    """Map header cells to the expected names; list every missing, unknown or duplicate one."""
    found = [_norm_header(v) for v in header_cells]
    while found and not found[-1]:
        found.pop()
    width = len(found)
    wanted = {_norm_header(name): name for name in expected}
    problems: list[TableProblem] = []
    positions: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    if not found:
        raise _problem("1行目に見出しがありません。", sheet, 1)
    for i, name in enumerate(found):
        letter = get_column_letter(i + 1)
        if not name:
            problems.append(TableProblem(sheet, 1, letter, None, f"{letter}列の見出しが空です。"))
        elif name not in wanted:
            problems.append(TableProblem(sheet, 1, letter, header_cells[i], f"想定していない列『{name}』があります。"))
        elif name in seen:
            problems.append(TableProblem(sheet, 1, letter, header_cells[i], f"列『{name}』が重複しています。"))
        else:
            seen[name] = i
            positions.append((i, wanted[name]))
    for norm, original in wanted.items():
        if norm not in seen:
            problems.append(TableProblem(sheet, 1, original, None, f"列『{original}』がありません。"))
    if not problems and strict_order:
        order = [name for _i, name in sorted(positions)]
        if order != list(expected):
            problems.append(TableProblem(
                sheet, 1, None, "、".join(order),
                f"列の順序が違います。正しい順序: {'、'.join(expected)}",
            ))
    if problems:
        raise TableError(problems)
    return list(expected), positions, width


def _open_xlsx(data: bytes, sheet: str | None, limits: files.ZipLimits):
    """Open a workbook after the archive safety checks; stream the chosen sheet's rows.

    openpyxl reads the workbook parts (sheet list, shared strings, styles: which cells are
    dates); the sheet's cells are streamed by ``_SheetCells`` (expat), which gives the same
    values as openpyxl's read-only ``iter_rows(values_only=True)`` at a fraction of the cost:
    openpyxl parses a sheet twice (once for its size) through Python-level element objects.
    """
    try:
        files.check_archive(data, "xlsx", limits)
    except files.UploadRejected as exc:
        raise _problem(exc.message) from None
    try:
        with warnings.catch_warnings():
            # openpyxl warns about unsupported extensions (slicers, some validations); harmless.
            warnings.simplefilter("ignore")
            reader = ExcelReader(io.BytesIO(data), read_only=True, data_only=True)
            reader.read_manifest()
            reader.read_strings()
            reader.read_workbook()
            apply_stylesheet(reader.archive, reader.wb)
            sheets = [(ws.name, rel.target) for ws, rel in reader.parser.find_sheets()
                      if rel.target in reader.valid_files and "chartsheet" not in rel.Type]
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, AttributeError):
        raise _problem("Excelファイルとして読み込めません（.xlsx形式で保存してください）。") from None
    archive = reader.archive
    if sheet is None:
        if not sheets:
            archive.close()
            raise _problem("ワークシートがありません。")
        title, path = sheets[0]
    else:
        by_name = {_norm_header(name): (name, target) for name, target in sheets}
        found = by_name.get(_norm_header(sheet))
        if found is None:
            names = "、".join(name for name, _ in sheets)
            archive.close()
            raise _problem(f"シート『{sheet}』がありません（あるシート: {names}）。", sheet)
        title, path = found
    cells = _SheetCells(reader.shared_strings, reader.wb._date_formats, reader.wb._timedelta_formats, reader.wb.epoch)
    numbered = cells.rows(archive.open(path))
    try:
        first = next(numbered, None)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError):
        archive.close()
        raise _problem("Excelファイルとして読み込めません（.xlsx形式で保存してください）。", title) from None
    if first is None or first[0] != 1:
        archive.close()
        raise _problem("1行目に見出しがありません。", title, 1)
    return title, list(first[1]), _guard_xlsx_rows(numbered, title), archive.close


_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_TAG_ROW, _TAG_C, _TAG_V, _TAG_IS, _TAG_T, _TAG_RPH = (f"{_MAIN_NS} {t}" for t in ("row", "c", "v", "is", "t", "rPh"))
_CHUNK = 1 << 16


class _SheetCells:
    """Stream a worksheet's rows as (row number, [values by column]) with expat.

    Values follow openpyxl's data-only reading: shared and inline strings (phonetic runs left
    out), numbers as int or float, dates for cells whose style is a date format, booleans,
    error text such as '#N/A', formulas' cached results.
    """

    def __init__(self, shared_strings: Sequence[str], date_formats: set[int], timedelta_formats: set[int],
                 epoch: dt.datetime) -> None:
        self.shared = shared_strings
        self.date_formats = date_formats
        self.timedelta_formats = timedelta_formats
        self.epoch = epoch
        self._dates: dict[tuple[str, int], Any] = {}  # a sheet repeats a few hundred dates

    def rows(self, source) -> Iterator[tuple[int, list[Any]]]:  # one tight state machine
        done: list[tuple[int, list[Any]]] = []
        row: list[Any] = []
        text: list[str] = []
        row_number = col = rph = 0
        kind, style, collect, in_is = "n", 0, False, False
        cols: dict[str, int] = {}
        value_of = self._value

        def start(name: str, attrs: dict[str, str]) -> None:
            nonlocal row_number, col, rph, kind, style, collect, in_is
            if name == _TAG_C:
                ref = attrs.get("r")
                if ref:
                    letters = ref.rstrip("0123456789")
                    index = cols.get(letters)
                    if index is None:
                        index = 0
                        for ch in letters:
                            index = index * 26 + (ord(ch) - 64)
                        cols[letters] = index
                    col = index
                else:
                    col += 1
                kind = attrs.get("t", "n")
                number = attrs.get("s")
                style = int(number) if number else 0
                text.clear()
            elif name == _TAG_V:
                collect = True
            elif name == _TAG_T:
                collect = in_is and not rph
            elif name == _TAG_ROW:
                number = attrs.get("r")
                row_number = int(float(number)) if number else row_number + 1
                col = 0
                row.clear()
            elif name == _TAG_IS:
                in_is = True
            elif name == _TAG_RPH:
                rph += 1

        def end(name: str) -> None:
            nonlocal rph, collect, in_is
            if name == _TAG_C:
                value = value_of("".join(text), kind, style)
                if value is not None:
                    if col > len(row):
                        row.extend([None] * (col - len(row)))
                    row[col - 1] = value
            elif name == _TAG_V or name == _TAG_T:
                collect = False
            elif name == _TAG_ROW:
                done.append((row_number, row[:]))
            elif name == _TAG_IS:
                in_is = False
            elif name == _TAG_RPH:
                rph -= 1

        def chars(data: str) -> None:
            if collect:
                text.append(data)

        def refuse(*_args: Any) -> None:
            raise ValueError("DOCTYPE or ENTITY declarations are not allowed")

        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = chars
        parser.StartDoctypeDeclHandler = refuse
        parser.EntityDeclHandler = refuse
        try:
            while True:
                chunk = source.read(_CHUNK)
                parser.Parse(chunk, not chunk)
                if done:
                    yield from done
                    done.clear()
                if not chunk:
                    break
        except expat.ExpatError as exc:
            raise ValueError(f"invalid worksheet XML: {exc}") from None
        finally:
            source.close()

    def _value(self, raw: str, kind: str, style: int) -> Any:
        if kind == "inlineStr":
            return raw
        if not raw:
            return None
        if kind == "n":
            if style in self.date_formats:
                key = (raw, style)
                found = self._dates.get(key)
                if found is None:
                    number = float(raw) if ("." in raw or "E" in raw or "e" in raw) else int(raw)
                    try:
                        found = from_excel(number, self.epoch, timedelta=style in self.timedelta_formats)
                    except (OverflowError, ValueError):
                        found = "#VALUE!"
                    self._dates[key] = found
                return found
            return float(raw) if ("." in raw or "E" in raw or "e" in raw) else int(raw)
        if kind == "s":
            return self.shared[int(raw)]
        if kind == "b":
            return bool(int(raw))
        if kind == "d":
            return from_ISO8601(raw)
        return raw  # 'str' (a formula's text result) and 'e' (an error such as #N/A)


def _guard_xlsx_rows(
    rows: Iterator[tuple[int, Sequence[Any]]], sheet: str
) -> Iterator[tuple[int, Sequence[Any]]]:
    """Turn parser failures in the middle of a sheet into a located ``TableError``."""
    number = 1
    try:
        for number, cells in rows:
            yield number, cells
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
        raise _problem(f"{number + 1}行目付近を読み込めません（ファイルが壊れている可能性があります）。",
                       sheet, number + 1) from exc


def _open_csv(data: bytes, filename: str):
    """Decode strictly (UTF-8 with or without BOM, else CP932) and stream csv records."""
    sheet = files.safe_display_name(filename)
    encoding = files.detect_text_encoding(data)
    if encoding is None:
        raise _locate_decode_error(data, sheet)
    text = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="strict", newline="")
    records = _csv_records(csv.reader(text, strict=True), sheet)
    first = next(records, None)
    if first is None:
        raise _problem("1行目に見出しがありません。", sheet, 1)
    return sheet, first[1], records, text.close


def _csv_records(reader: Iterator[list[str]], sheet: str) -> Iterator[tuple[int, list[Any]]]:
    """Number csv records the way Excel numbers rows and undo our own formula guard."""
    number = 0
    try:
        for number, record in enumerate(reader, start=1):
            yield number, [_csv_cell(v) for v in record]
    except csv.Error as exc:
        raise _problem(f"CSVの形式が正しくありません（{exc}）。引用符（\"）の閉じ忘れがないか確認してください。",
                       sheet, number + 1) from None


def _csv_cell(value: str) -> Any:
    """Empty → None, and drop the ``'`` that ``write_csv`` put before formula-like text."""
    if value == "":
        return None
    if value.startswith("'") and _GUARDED_QUOTE.match(value):
        return value[1:]
    return value


def _locate_decode_error(data: bytes, sheet: str) -> TableError:
    """Find where an undecodable byte is, as a row and column a user can look up."""
    utf8_span = files.find_decode_error(data, "utf-8-sig")
    cp932_span = files.find_decode_error(data, "cp932")
    assert utf8_span is not None and cp932_span is not None
    # Report against the encoding the file was evidently written in: a BOM or valid non-ASCII
    # UTF-8 before the bad byte means a damaged UTF-8 file, otherwise a damaged CP932 one.
    prefix = data[: utf8_span[0]]
    if data.startswith(codecs.BOM_UTF8) or not prefix.isascii():
        (start, end), encoding, label = utf8_span, "utf-8-sig", "UTF-8"
    else:
        (start, end), encoding, label = cp932_span, "cp932", "Shift_JIS（CP932）"
    row, column_index, header = _position_in_csv(data[:start].decode(encoding))
    bad = data[start:max(end, start + 1)][:4]
    if row > 1 and column_index < len(header) and header[column_index]:
        column = header[column_index]
    else:
        column = get_column_letter(column_index + 1)
    return _problem(
        f"文字コード（{label}）として読めないバイト（0x{bad.hex().upper()}）があります。"
        "UTF-8またはShift_JIS（CP932）で保存し直してください。",
        sheet, row, column, None,
    )


def _position_in_csv(good_text: str) -> tuple[int, int, list[str]]:
    """Return (row number, 0-based column, header names) of the position right after ``good_text``."""
    row, column, in_quotes, at_field_start = 1, 0, False, True
    header: list[str] = []
    field_chars: list[str] = []
    i = 0
    while i < len(good_text):
        c = good_text[i]
        if in_quotes:
            if c == '"':
                if good_text[i + 1:i + 2] == '"':
                    i += 1
                else:
                    in_quotes = False
            if row == 1:
                field_chars.append(c)
        elif c == '"' and at_field_start:
            in_quotes = True
        elif c == ",":
            if row == 1:
                header.append(_norm_header("".join(field_chars).strip('"')))
                field_chars = []
            column += 1
            at_field_start = True
            i += 1
            continue
        elif c in "\r\n":
            if c == "\r" and good_text[i + 1:i + 2] == "\n":
                i += 1
            if row == 1:
                header.append(_norm_header("".join(field_chars).strip('"')))
                field_chars = []
            row += 1
            column = 0
            at_field_start = True
            i += 1
            continue
        elif row == 1:
            field_chars.append(c)
        at_field_start = False
        i += 1
    return row, column, header


# ---------------------------------------------------------------------------------------------
# Writing: CSV
# ---------------------------------------------------------------------------------------------

_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")

# Characters Python's cp932 codec cannot encode but Windows users expect to survive.
_CP932_FIXUPS = str.maketrans({"\u2014": "\u2015", "\u00a5": "\uffe5", "\u00a6": "\uffe4"})


class ExportEncodingError(ValueError):
    """A character cannot be written in the chosen encoding; the message says where."""


def guard_formula(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula (DATA-01, OWASP CSV injection)."""
    if text.startswith(_FORMULA_TRIGGERS):
        return "'" + text
    return text


def _csv_text(value: Any) -> str:
    """Render one CSV cell: numbers as numbers, dates in ISO form, text guarded."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (dt.date, PartialDate)):
        return value.isoformat()
    return guard_formula(str(value))


def _row_values(row: Sequence[Any] | Mapping[str, Any], headers: Sequence[str]) -> Sequence[Any]:
    if isinstance(row, Mapping):
        return [row.get(h) for h in headers]
    return row


def write_csv(headers: Sequence[str], rows: Iterable[Sequence[Any] | Mapping[str, Any]],
              encoding: str = "utf-8-sig") -> bytes:
    """Write a CSV (RFC 4180 quoting, CRLF) for Japanese Excel.

    ``encoding`` is 'utf-8-sig' (default: Excel opens it without mojibake) or 'cp932'. In
    CP932 a character with no Shift_JIS form (emoji, 𠮷) raises ``ExportEncodingError``
    naming the row and column rather than being dropped; the usual Unicode/CP932 mapping
    differences (—, ¥) are mapped to their Windows forms first.
    """
    if encoding not in ("utf-8-sig", "cp932"):
        raise ValueError("encoding must be 'utf-8-sig' or 'cp932'")
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(_encodable_row(headers, headers, 1, encoding))
    for number, row in enumerate(rows, start=2):
        writer.writerow(_encodable_row(_row_values(row, headers), headers, number, encoding))
    return buffer.getvalue().encode(encoding)


def _encodable_row(values: Sequence[Any], headers: Sequence[str], number: int, encoding: str) -> list[str]:
    cells = [_csv_text(v) for v in values]
    if encoding == "cp932":
        for i, text in enumerate(cells):
            fixed = text.translate(_CP932_FIXUPS)
            try:
                fixed.encode("cp932")
            except UnicodeEncodeError as exc:
                column = headers[i] if i < len(headers) else get_column_letter(i + 1)
                raise ExportEncodingError(
                    f"{number}行目 列『{column}』の文字「{fixed[exc.start:exc.end]}」はShift_JIS（CP932）で"
                    "保存できません。UTF-8で出力してください。"
                ) from None
            cells[i] = fixed
    return cells


# ---------------------------------------------------------------------------------------------
# Writing: XLSX
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListValidation:
    """Restrict a column to a list of choices (a drop-down in Excel)."""

    column: str
    choices: Sequence[str]
    allow_blank: bool = True
    error: str = "一覧から選択してください。"


@dataclass(frozen=True)
class DateValidation:
    """Restrict a column to dates, optionally between ``first`` and ``last``."""

    column: str
    first: dt.date | None = None
    last: dt.date | None = None
    allow_blank: bool = True
    error: str = "日付（例: 2015/10/1）を入力してください。"


@dataclass
class SheetSpec:
    """One worksheet to write. ``rows`` may be any iterable (a generator keeps memory flat)."""

    name: str
    headers: Sequence[str]
    rows: Iterable[Sequence[Any] | Mapping[str, Any]] = ()
    column_widths: Sequence[float] | Mapping[str, float] | None = None
    freeze_header: bool = True
    protect_header: bool = False
    validations: Sequence[ListValidation | DateValidation] = ()
    autofilter: bool = True


_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_LOCKED = Protection(locked=True)
_UNLOCKED = Protection(locked=False)
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")
LISTS_SHEET = "_lists"
INSTRUCTIONS_SHEET = "記入方法"


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _check_sheet_name(name: str) -> None:
    if not name or len(name) > 31 or _SHEET_NAME_BAD.search(name) or name[0] == "'" or name[-1] == "'":
        raise ValueError(f"invalid Excel sheet name: {name!r}")


def _clean_text(text: str) -> str:
    """Drop characters XML cannot hold and cap at Excel's cell limit (the DB keeps the full text)."""
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    return text[:EXCEL_MAX_CELL_CHARS]


def _text_cell(ws, text: str, protection: Protection | None) -> WriteOnlyCell | str:
    """A cell that is text whatever it starts with: '=…' stays a string, never a formula."""
    text = _clean_text(text)
    if protection is None and not text.startswith("=") and text not in ERROR_CODES:
        # openpyxl stores such a str as a string cell anyway; skipping the cell object keeps
        # 50,000-row exports fast. Only '=…' and '#N/A'-like text need forcing.
        return text
    cell = WriteOnlyCell(ws, value=text)
    cell.data_type = "s"
    if protection is not None:
        cell.protection = protection
    return cell


def _xlsx_value(ws, value: Any, protection: Protection | None) -> Any:
    """Convert one value into what the write-only sheet should get."""
    if value is None:
        return None
    if isinstance(value, PartialDate):
        cell = WriteOnlyCell(ws, value=value.value)
        cell.number_format = "yyyy/mm" if value.precision == "month" else "yyyy/mm/dd"
    elif isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # Excel has no time zones; the portal's users are in JST
            value = value.astimezone(_JST).replace(tzinfo=None)
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = "yyyy/mm/dd hh:mm"
    elif isinstance(value, dt.date):
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = "yyyy/mm/dd"
    elif isinstance(value, (bool, int, float, Decimal)):
        if protection is None:
            return value
        cell = WriteOnlyCell(ws, value=value)
    else:
        return _text_cell(ws, str(value), protection)
    if protection is not None:
        cell.protection = protection
    return cell


def write_xlsx(sheets: Sequence[SheetSpec], instructions: Sequence[str] | None = None) -> bytes:
    """Write sheets to an .xlsx with openpyxl's write-only mode (memory stays flat at 50k+ rows).

    Text is always stored as text (DATA-01); numbers and dates keep their types. Each sheet gets
    a bold header, optional frozen header, autofilter, drop-down and date validations, and with
    ``protect_header`` a locked header on a protected sheet whose other cells stay editable
    (no password: it prevents accidents, it is not a security boundary). ``instructions``
    lines go on a last sheet 「記入方法」, so the data sheet stays first for ``read_table``.
    """
    names = [spec.name for spec in sheets] + ([INSTRUCTIONS_SHEET] if instructions else [])
    for spec in sheets:
        _check_sheet_name(spec.name)
        for rule in spec.validations:
            if rule.column not in spec.headers:
                raise ValueError(f"validation for unknown column {rule.column!r} on sheet {spec.name!r}")
    if len({n.casefold() for n in names}) != len(names):
        raise ValueError(f"duplicate sheet names: {names}")
    workbook = openpyxl.Workbook(write_only=True)
    try:
        _fill_workbook(workbook, sheets, instructions)
        buffer = io.BytesIO()
        workbook.save(buffer)
    except BaseException:
        _discard(workbook)
        raise
    return buffer.getvalue()


def _discard(workbook) -> None:
    """Best effort: close half-written write-only sheets and delete their temporary files."""
    for ws in workbook._sheets:
        for step in (lambda: ws._rows.close(), lambda: ws._writer.xf.close(), lambda: ws._writer.cleanup()):
            try:
                step()
            except Exception:  # noqa: BLE001 - cleanup after an error must not mask it
                pass


def _fill_workbook(workbook, sheets: Sequence[SheetSpec], instructions: Sequence[str] | None) -> None:
    """Add every sheet's header, rows, widths, validations and protection to ``workbook``."""
    list_store: list[list[str]] = []  # one column of the hidden list sheet per long choice list
    for spec in sheets:
        ws = workbook.create_sheet(spec.name)
        headers = list(spec.headers)
        letters = {h: get_column_letter(i + 1) for i, h in enumerate(headers)}
        widths = _widths(spec, headers)
        for i, width in enumerate(widths, start=1):
            dim = ws.column_dimensions[get_column_letter(i)]
            dim.width = width
            if spec.protect_header:
                dim.protection = _UNLOCKED  # empty cells below the data stay editable too
        if spec.freeze_header:
            ws.freeze_panes = "A2"
        body_protection = _UNLOCKED if spec.protect_header else None
        header_cells = []
        for header in headers:
            cell = WriteOnlyCell(ws, value=_clean_text(str(header)))
            cell.data_type = "s"
            if spec.protect_header:
                cell.protection = _LOCKED
            cell.font = _HEADER_FONT
            cell.fill = _HEADER_FILL
            header_cells.append(cell)
        ws.append(header_cells)
        count = 0
        for row in spec.rows:
            values = _row_values(row, headers)
            ws.append([_xlsx_value(ws, v, body_protection) for v in values])
            count += 1
        last_col = get_column_letter(max(len(headers), 1))
        if spec.autofilter and headers:
            ws.auto_filter.ref = f"A1:{last_col}{count + 1}"
        for rule in spec.validations:
            col = letters[rule.column]
            if isinstance(rule, ListValidation):
                formula = _inline_list(rule.choices)
                if formula is None:  # too long for Excel's inline list: use a hidden sheet
                    list_store.append([_clean_text(str(c)) for c in rule.choices])
                    list_col = get_column_letter(len(list_store))
                    formula = f"'{LISTS_SHEET}'!${list_col}$1:${list_col}${max(len(rule.choices), 1)}"
                dv = DataValidation(type="list", formula1=formula, allow_blank=rule.allow_blank,
                                    showErrorMessage=True, errorTitle="入力エラー", error=rule.error)
            else:
                first = rule.first or dt.date(1900, 1, 1)
                last = rule.last or dt.date(9999, 12, 31)
                dv = DataValidation(type="date", operator="between",
                                    formula1=f"DATE({first.year},{first.month},{first.day})",
                                    formula2=f"DATE({last.year},{last.month},{last.day})",
                                    allow_blank=rule.allow_blank, showErrorMessage=True,
                                    errorTitle="入力エラー", error=rule.error)
            dv.add(f"{col}2:{col}{EXCEL_MAX_ROW}")
            ws.data_validations.append(dv)
        if spec.protect_header:
            ws.protection.sheet = True
            # Allowed while protected (False = not locked): the body stays usable.
            for option in ("formatColumns", "formatRows", "insertRows", "deleteRows", "sort", "autoFilter"):
                setattr(ws.protection, option, False)
    if instructions:
        ws = workbook.create_sheet(INSTRUCTIONS_SHEET)
        ws.column_dimensions["A"].width = 100
        for line in instructions:
            cell = WriteOnlyCell(ws, value=_clean_text(str(line)))
            cell.data_type = "s"
            cell.alignment = Alignment(wrap_text=True, vertical="top")
            ws.append([cell])
    if list_store:
        # Created last so the data sheets keep their positions; write-only sheets take whole rows.
        lists_ws = workbook.create_sheet(LISTS_SHEET)
        lists_ws.sheet_state = "hidden"
        depth = max(len(col) for col in list_store)
        for r in range(depth):
            lists_ws.append([
                _text_cell(lists_ws, col[r], None) if r < len(col) else None for col in list_store
            ])
    if not sheets and not instructions:
        workbook.create_sheet("Sheet1")


def _inline_list(choices: Sequence[str]) -> str | None:
    """Return an inline list formula, or None when Excel's 255-character/comma rules forbid it."""
    texts = [str(c) for c in choices]
    if any("," in t or '"' in t for t in texts):
        return None
    formula = '"' + ",".join(texts) + '"'
    return formula if len(formula) <= 257 else None


def _widths(spec: SheetSpec, headers: list[str]) -> list[float]:
    """Column widths: given per header or position, else guessed from the header text."""
    if isinstance(spec.column_widths, Mapping):
        given = spec.column_widths
        return [float(given.get(h, _guess_width(h))) for h in headers]
    if spec.column_widths is not None:
        widths = list(spec.column_widths)
        return [float(widths[i]) if i < len(widths) else _guess_width(h) for i, h in enumerate(headers)]
    return [_guess_width(h) for h in headers]


def _guess_width(header: str) -> float:
    return float(min(50, max(10, _display_width(str(header)) + 4)))


# ---------------------------------------------------------------------------------------------
# Problem reports
# ---------------------------------------------------------------------------------------------


def _problem_rows(problems: Iterable[TableProblem]) -> Iterator[list[Any]]:
    for p in problems:
        value = p.value
        if value is not None and not isinstance(value, (str, int, float, Decimal, dt.date)):
            value = str(value)
        yield [p.sheet or "", p.row, p.column or "", value, p.message]


def problems_to_csv(problems: Iterable[TableProblem]) -> bytes:
    """Write the error list as a UTF-8 (BOM) CSV for download (REL-03)."""
    return write_csv(PROBLEM_HEADERS, _problem_rows(problems))


def problems_to_xlsx(problems: Iterable[TableProblem]) -> bytes:
    """Write the error list as an .xlsx for download (REL-03)."""
    return write_xlsx([SheetSpec("エラー一覧", PROBLEM_HEADERS, _problem_rows(problems),
                                 column_widths=[20, 8, 20, 30, 60])])
