"""Excel/CSV reading and writing (pmo.core.tabular): DATA-01, DATA-02, REL-03."""

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
import textwrap
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from pmo.core.dates import PartialDate, parse_date_input
from pmo.core.tabular import (
    PROBLEM_HEADERS,
    DateValidation,
    ExportEncodingError,
    ListValidation,
    SheetSpec,
    TableError,
    TableProblem,
    open_table,
    problems_to_csv,
    problems_to_xlsx,
    read_table,
    write_csv,
    write_xlsx,
)

HEADERS = ["団体コード", "団体名", "進捗状況", "完了予定日", "金額", "コメント"]
INJECTIONS = [
    '=HYPERLINK("http://evil","x")',
    "+1+1",
    "-2+3",
    "@SUM(1)",
    "\t=1",
    "\r=1",
    "=cmd|' /C calc'!A0",
    "\0=1",
]


def sample_rows(n):
    for i in range(n):
        yield [
            f"{130001 + i}",
            f"東京都テスト区{i}（髙橋・①㈱）",
            ["未着手", "着手", "完了"][i % 3],
            dt.date(2025, 4, 1) + dt.timedelta(days=i),
            -5 if i == 0 else i * 1000,
            '=HYPERLINK("http://evil.example/","クリック")' if i == 7 else f"コメント{i}\n二行目",
        ]


def reload_cells(data):
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    return [cell for ws in workbook.worksheets for row in ws.iter_rows() for cell in row]


# --- xlsx round trip --------------------------------------------------------------------------


def test_xlsx_round_trip_50_rows():
    data = write_xlsx([SheetSpec("進捗", HEADERS, sample_rows(50))])
    assert all(cell.data_type != "f" for cell in reload_cells(data))

    table = read_table(data, "進捗.xlsx", HEADERS)
    assert table.sheet == "進捗"
    assert table.headers == HEADERS
    assert len(table.rows) == 50
    expected = list(sample_rows(50))
    for row, want in zip(table.rows, expected, strict=True):
        assert row.sheet == "進捗"
        assert row["団体名"] == want[1]
        assert row["進捗状況"] == want[2]
        assert parse_date_input(row["完了予定日"]) == PartialDate(want[3], "day")
        assert row["金額"] == want[4]
        assert row["コメント"] == want[5]
    assert [r.row_number for r in table.rows] == list(range(2, 52))
    assert table.rows[7]["コメント"] == '=HYPERLINK("http://evil.example/","クリック")'
    assert table.rows[0]["金額"] == -5


def test_xlsx_text_never_becomes_formula_and_numbers_stay_numbers():
    rows = [[text, -5, Decimal("12.5"), 0.25] for text in INJECTIONS + ["#N/A", "#DIV/0!", "=", "'"]]
    data = write_xlsx([SheetSpec("s", ["text", "int", "dec", "float"], rows)])
    cells = reload_cells(data)
    assert not [c for c in cells if c.data_type in ("f", "e")]
    table = read_table(data, "x.xlsx", ["text", "int", "dec", "float"])
    # \0 cannot be stored in XML; it is dropped, the rest is kept as typed
    assert [r["text"] for r in table.rows] == [t.replace("\0", "") for t in rows and [r[0] for r in rows]]
    assert {r["int"] for r in table.rows} == {-5}
    assert {r["dec"] for r in table.rows} == {12.5}
    assert {r["float"] for r in table.rows} == {0.25}


def test_xlsx_value_types():
    aware = dt.datetime(2025, 4, 1, 0, 30, tzinfo=dt.timezone.utc)
    rows = [[PartialDate.of_month(2015, 10), PartialDate.of_day(2015, 10, 1), aware, True, None, object]]
    data = write_xlsx([SheetSpec("s", list("abcdef"), rows)])
    ws = openpyxl.load_workbook(io.BytesIO(data))["s"]
    a, b, c, d, e, f = ws[2]
    assert (a.value, a.number_format) == (dt.datetime(2015, 10, 1), "yyyy/mm")
    assert (b.value, b.number_format) == (dt.datetime(2015, 10, 1), "yyyy/mm/dd")
    assert c.value == dt.datetime(2025, 4, 1, 9, 30)  # shown in JST, Excel has no time zones
    assert d.value is True
    assert e.value is None
    assert f.data_type == "s"
    assert parse_date_input(a.value).value == dt.date(2015, 10, 1)


def test_xlsx_sheet_features():
    spec = SheetSpec(
        "進捗",
        HEADERS,
        [dict(zip(HEADERS, r)) for r in sample_rows(3)],  # mappings work as rows too
        column_widths={"団体名": 40},
        protect_header=True,
        validations=[
            ListValidation("進捗状況", ["未着手", "着手", "完了"]),
            ListValidation("団体コード", [f"選択肢{i:03d}" for i in range(60)]),  # > 255 chars
            DateValidation("完了予定日", dt.date(2015, 4, 1), dt.date(2031, 3, 31)),
        ],
    )
    data = write_xlsx([spec], instructions=["1行目（見出し）は変更しないでください。", "=SUM(A1)"])
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == ["進捗", "記入方法", "_lists"]
    ws = workbook["進捗"]
    assert ws.freeze_panes == "A2"
    assert ws.protection.sheet is True
    assert ws.protection.insertRows is False
    assert all(cell.protection.locked for cell in ws[1])
    assert all(cell.font.b for cell in ws[1])
    assert not any(cell.protection.locked for cell in ws[2])
    assert ws.column_dimensions["B"].width == 40
    assert ws.column_dimensions["A"].protection.locked is False
    assert ws.auto_filter.ref == "A1:F4"
    rules = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    assert rules["C2:C1048576"].type == "list"
    assert rules["C2:C1048576"].formula1 == '"未着手,着手,完了"'
    assert rules["A2:A1048576"].formula1 == "'_lists'!$A$1:$A$60"
    assert rules["D2:D1048576"].type == "date"
    assert rules["D2:D1048576"].formula1 == "DATE(2015,4,1)"
    assert workbook["_lists"].sheet_state == "hidden"
    assert workbook["_lists"]["A60"].value == "選択肢059"
    assert workbook["記入方法"]["A2"].value == "=SUM(A1)"
    assert workbook["記入方法"]["A2"].data_type == "s"
    # the data sheet stays first, so read_table finds it by default
    assert len(read_table(data, "t.xlsx", HEADERS).rows) == 3
    assert all(cell.data_type != "f" for cell in reload_cells(data))


def test_generated_workbooks_pass_the_upload_checks():
    from pmo.core.files import inspect_upload

    spec = SheetSpec("進捗", HEADERS, sample_rows(50), protect_header=True,
                     validations=[ListValidation("進捗状況", [f"状況{i}" for i in range(80)])])
    data = write_xlsx([spec], instructions=["記入例"])
    assert inspect_upload(data, "テンプレート.xlsx", {"xlsx"}, 10 * 1024 * 1024).kind == "xlsx"
    utf8 = write_csv(HEADERS, sample_rows(5))
    assert inspect_upload(utf8, "a.csv", {"csv"}, 1024 * 1024).encoding == "utf-8"
    assert inspect_upload(
        write_csv(HEADERS, sample_rows(5), encoding="cp932"), "a.csv", {"csv"}, 1024 * 1024
    ).encoding == "cp932"


def test_write_xlsx_rejects_bad_specs():
    with pytest.raises(ValueError):
        write_xlsx([SheetSpec("a/b", ["x"])])
    with pytest.raises(ValueError):
        write_xlsx([SheetSpec("s", ["x"], validations=[ListValidation("y", ["a"])])])
    with pytest.raises(ValueError):
        write_xlsx([SheetSpec("記入方法", ["x"])], instructions=["a"])


def test_write_xlsx_failing_row_source_propagates_cleanly():
    def rows():
        yield ["ok"]
        raise RuntimeError("DB went away")

    with pytest.raises(RuntimeError, match="DB went away"):
        write_xlsx([SheetSpec("s", ["x"], rows())])


def test_xlsx_sheet_selection():
    data = write_xlsx([SheetSpec("説明", ["メモ"], [["読んでください"]]), SheetSpec("データ", ["ｺｰﾄﾞ"], [["1"]])])
    assert read_table(data, "x.xlsx", ["コード"], sheet="データ").rows[0]["コード"] == "1"
    with pytest.raises(TableError) as info:
        read_table(data, "x.xlsx", ["コード"], sheet="存在しない")
    assert "シート『存在しない』がありません" in str(info.value)
    assert "説明、データ" in str(info.value)


def test_xlsx_blank_rows_skipped_and_numbered_like_excel():
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.title = "一覧"
    ws.append(["名前", "数"])
    ws["A2"] = "一"
    ws["A5"] = "  "
    ws["A7"] = "七"
    ws["B9"] = 9
    buffer = io.BytesIO()
    workbook.save(buffer)
    table = read_table(buffer.getvalue(), "x.xlsx", ["名前", "数"])
    found = [(r.row_number, r["名前"], r["数"]) for r in table.rows]
    assert found == [(2, "一", None), (7, "七", None), (9, None, 9)]


def test_xlsx_with_wrong_dimension_tag_still_reads_all_columns():
    data = write_xlsx([SheetSpec("s", ["a", "b", "c"], [["1", "2", "3"], ["4", "5", "6"]])])
    data = rewrite_zip(data, "xl/worksheets/sheet1.xml",
                       lambda xml: re.sub(rb"<dimension [^>]*/>", b"", xml).replace(
                           b"<sheetViews>", b'<dimension ref="A1"/><sheetViews>', 1))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert b'<dimension ref="A1"/>' in zf.read("xl/worksheets/sheet1.xml")
    rows = read_table(data, "x.xlsx", ["a", "b", "c"]).rows
    assert [dict(r) for r in rows][1] == {"a": "4", "b": "5", "c": "6"}


def rewrite_zip(data, member, change):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, change(body) if info.filename == member else body)
    return out.getvalue()


def test_xlsx_with_doctype_is_refused():
    data = write_xlsx([SheetSpec("s", ["a"], [["1"]])])
    evil = rewrite_zip(
        data, "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(
            b"<worksheet", b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><worksheet', 1
        ),
    )
    with pytest.raises(TableError) as info:
        read_table(evil, "x.xlsx", ["a"])
    assert "DOCTYPE" in str(info.value)


def test_not_a_table_file():
    with pytest.raises(TableError, match="Excel（.xlsx）またはCSV"):
        read_table(b"x", "a.pdf", ["a"])
    with pytest.raises(TableError, match="Excelファイルとして読み込めません|ZIP"):
        read_table(b"PK\x03\x04garbage", "a.xlsx", ["a"])


# --- headers ----------------------------------------------------------------------------------


def csv_bytes(text, encoding="utf-8"):
    return text.replace("\n", "\r\n").encode(encoding)


def test_header_problems_are_all_listed():
    data = csv_bytes("団体名,備考,団体名,,金額\n")
    with pytest.raises(TableError) as info:
        read_table(data, "x.csv", ["団体コード", "団体名", "金額"])
    messages = [p.message for p in info.value.problems]
    assert "想定していない列『備考』があります。" in messages
    assert "列『団体名』が重複しています。" in messages
    assert "D列の見出しが空です。" in messages
    assert "列『団体コード』がありません。" in messages
    assert all(p.row == 1 for p in info.value.problems)
    assert {p.column for p in info.value.problems} == {"B", "C", "D", "団体コード"}


def test_header_order():
    data = csv_bytes("金額,団体名\n1,A\n")
    with pytest.raises(TableError, match="列の順序が違います。正しい順序: 団体名、金額"):
        read_table(data, "x.csv", ["団体名", "金額"])
    rows = read_table(data, "x.csv", ["団体名", "金額"], strict_order=False).rows
    assert dict(rows[0]) == {"団体名": "A", "金額": "1"}


def test_header_matched_after_nfkc_and_trim():
    data = csv_bytes(" ｺﾒﾝﾄ ,ＩＤ,金額（円）\nx,1,2\n")
    table = read_table(data, "x.csv", ["コメント", "ID", "金額(円)"])
    assert dict(table.rows[0]) == {"コメント": "x", "ID": "1", "金額(円)": "2"}


def test_trailing_empty_header_cells_are_ignored_but_stray_values_are_not():
    data = csv_bytes("a,b,,\n1,2,,\n3,4,,oops\n5,6,x,\n")
    with pytest.raises(TableError) as info:
        read_table(data, "x.csv", ["a", "b"])
    assert [(p.row, p.column, p.value) for p in info.value.problems] == [(3, "D", "oops"), (4, "C", "x")]
    assert all(p.message == "見出しのない列に値があります。" for p in info.value.problems)


def test_empty_file():
    with pytest.raises(TableError, match="見出しがありません"):
        read_table(b"", "x.csv", ["a"])


# --- CSV encodings (DATA-02) ------------------------------------------------------------------

SPECIAL = "①㈱髙～ﾃｽﾄ"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_csv_encodings(encoding):
    text = f"ｺﾒﾝﾄ,団体名\n{SPECIAL},\"株式会社,髙島屋\"\n\n\"改行\nあり\",最後\n"
    table = read_table(csv_bytes(text, encoding), "一覧.csv", ["コメント", "団体名"])
    assert table.sheet == "一覧.csv"
    assert [(r.row_number, r["コメント"], r["団体名"]) for r in table.rows] == [
        (2, SPECIAL, "株式会社,髙島屋"),
        (4, "改行\r\nあり", "最後"),
    ]


def test_csv_wave_dash_round_trip():
    # UTF-8 keeps U+301C; CP932 has one code for 〜 and ～, and Windows reads it back as ～ (U+FF5E).
    assert read_table(write_csv(["a"], [["〜"]]), "x.csv", ["a"]).rows[0]["a"] == "〜"
    cp932 = write_csv(["a"], [["〜"]], encoding="cp932")
    assert b"\x81\x60" in cp932
    assert read_table(cp932, "x.csv", ["a"]).rows[0]["a"] == "～"


@pytest.mark.parametrize(
    ("data", "row", "column", "label"),
    [
        # CP932 file with a byte that is not CP932 (0xFF) in row 3, column 団体名
        ("コメント,団体名\n髙,①\nok,".encode("cp932") + b"\xff" + "\n".encode("cp932"), 3, "団体名", "Shift_JIS"),
        # UTF-8 file (has Japanese) with a broken sequence in row 4, column コメント
        ("コメント,団体名\nあ,い\nう,え\n".encode() + b"\xe3\x81" + b",x\n", 4, "コメント", "UTF-8"),
        # BOM marks UTF-8 even when the damage comes first; a quoted newline does not start a row
        (b"\xef\xbb\xbfa,b\n\"x\ny\",\xff\n", 2, "b", "UTF-8"),
        # damage in the header row: the column is given as a letter
        (b"a,b,\x80c\n", 1, "C", "Shift_JIS"),
    ],
)
def test_undecodable_byte_is_located(data, row, column, label):
    with pytest.raises(TableError) as info:
        read_table(data, "x.csv", ["コメント", "団体名"])
    (problem,) = info.value.problems
    assert (problem.row, problem.column) == (row, column)
    assert label in problem.message
    assert "読めないバイト" in problem.message


def test_csv_bad_quoting_is_a_located_problem():
    with pytest.raises(TableError) as info:
        read_table(csv_bytes('a,b\n1,"x"y\n'), "x.csv", ["a", "b"])
    assert info.value.problems[0].row == 2


# --- CSV writing (DATA-01) --------------------------------------------------------------------


def parse_csv(data, encoding="utf-8-sig"):
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


def test_write_csv_guards_formulas_but_keeps_numbers():
    rows = [[text, -5, -0.5, Decimal("-12.30"), "-5"] for text in INJECTIONS]
    data = write_csv(["text", "int", "float", "decimal", "text number"], rows)
    assert data.startswith(b"\xef\xbb\xbf")
    parsed = parse_csv(data)
    assert parsed[0] == ["text", "int", "float", "decimal", "text number"]
    for written, (text, *_rest) in zip(parsed[1:], rows, strict=True):
        assert written[0] == "'" + text
        assert written[1:] == ["-5", "-0.5", "-12.30", "'-5"]
    # reading our own export gives the original text back
    table = read_table(data, "x.csv", ["text", "int", "float", "decimal", "text number"])
    assert [r["text"] for r in table.rows] == INJECTIONS


def test_write_csv_rfc4180():
    data = write_csv(["名前", "備考"], [['株式会社"テスト"', "a,b"], ["改行\nあり", None], [dt.date(2015, 10, 1), True]])
    text = data.decode("utf-8-sig")
    assert text == '名前,備考\r\n"株式会社""テスト""","a,b"\r\n"改行\nあり",\r\n2015-10-01,TRUE\r\n'


def test_write_csv_mappings_and_partial_dates():
    rows = [{"b": PartialDate.of_month(2015, 10)}, {"a": dt.datetime(2015, 10, 1, 9, 5)}]
    data = write_csv(["a", "b"], rows)
    assert parse_csv(data)[1:] == [["", "2015-10"], ["2015-10-01 09:05:00", ""]]


def test_write_csv_cp932():
    data = write_csv(["団体名", "備考"], [[SPECIAL, "価格¥100—税込"]], encoding="cp932")
    assert not data.startswith(b"\xef\xbb\xbf")
    assert parse_csv(data, "cp932")[1] == [SPECIAL, "価格￥100―税込"]


def test_write_csv_cp932_unencodable_is_an_error_not_silent_loss():
    with pytest.raises(ExportEncodingError) as info:
        write_csv(["団体名", "備考"], [["a", "b"], ["𠮷野家", "😀"]], encoding="cp932")
    assert "3行目 列『団体名』の文字「𠮷」はShift_JIS（CP932）で保存できません" in str(info.value)


def test_write_csv_rejects_unknown_encoding():
    with pytest.raises(ValueError):
        write_csv(["a"], [], encoding="latin-1")


# --- iterator API -----------------------------------------------------------------------------


def test_open_table_is_lazy_and_fails_at_the_bad_row():
    data = csv_bytes("a\n1\n2\n3\n")
    with open_table(data, "x.csv", ["a"]) as reader:
        assert reader.headers == ["a"]
        rows = iter(reader)
        assert next(rows)["a"] == "1"
        assert next(rows).row_number == 3
    bad = csv_bytes("a\n1\n2,x\n3\n")
    seen = []
    with pytest.raises(TableError) as info:
        for row in open_table(bad, "x.csv", ["a"]):
            seen.append(row["a"])
    assert seen == ["1"]
    assert info.value.problems[0].row == 3


def test_open_table_checks_header_before_iteration():
    with pytest.raises(TableError):
        open_table(csv_bytes("b\n1\n"), "x.csv", ["a"])


def test_max_rows():
    with pytest.raises(TableError, match="行数が上限"):
        read_table(csv_bytes("a\n1\n2\n3\n"), "x.csv", ["a"], max_rows=2)


# --- problem reports (REL-03) -----------------------------------------------------------------

PROBLEMS = [
    TableProblem("進捗", 5, "金額", "abc", "数値を入力してください。"),
    TableProblem("進捗", 537, "団体コード", "=HYPERLINK(\"http://evil\")", "未登録の団体コードです。"),
    TableProblem(None, None, None, None, "ファイル全体の問題"),
    TableProblem("進捗", 998, "完了予定日", dt.date(2015, 2, 1), "重複しています。"),
]


def test_problems_to_csv():
    rows = parse_csv(problems_to_csv(PROBLEMS))
    assert rows[0] == PROBLEM_HEADERS == ["シート", "行", "列", "値", "エラー内容"]
    assert rows[1] == ["進捗", "5", "金額", "abc", "数値を入力してください。"]
    assert rows[2][3] == "'=HYPERLINK(\"http://evil\")"
    assert rows[3] == ["", "", "", "", "ファイル全体の問題"]


def test_problems_to_xlsx():
    data = problems_to_xlsx(PROBLEMS)
    assert all(cell.data_type != "f" for cell in reload_cells(data))
    table = read_table(data, "errors.xlsx", PROBLEM_HEADERS)
    assert table.sheet == "エラー一覧"
    assert [r["行"] for r in table.rows] == [5, 537, None, 998]
    assert table.rows[1]["値"] == "=HYPERLINK(\"http://evil\")"


def test_table_error_message_summarises():
    error = TableError(PROBLEMS * 2)
    assert str(error).startswith("ファイルに8件の問題があります。5行目 列『金額』: 数値を入力してください。")
    assert "ほか3件" in str(error)


# --- 50,000 rows, bounded memory --------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pmo.core.tabular import open_table
    data = open(sys.argv[1], "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = 0
    with open_table(data, sys.argv[2], json.loads(sys.argv[3])) as reader:
        for row in reader:
            count += 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"count": count, "grew_kib": after - before}))
    """
)


BIG_HEADERS = ["団体コード", "団体名", "完了予定日"]


def big_rows(n):
    for i in range(n):
        yield [f"{i:06d}", f"テスト団体{i}・コメント{i}", dt.date(2025, 4, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_50000_rows_stream_with_bounded_memory(tmp_path: Path, kind):
    if kind == "xlsx":
        data = write_xlsx([SheetSpec("大量", BIG_HEADERS, big_rows(50_000))])
    else:
        data = write_csv(BIG_HEADERS, big_rows(50_000))
    path = tmp_path / f"big.{kind}"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), f"big.{kind}", json.dumps(BIG_HEADERS)],
        capture_output=True, text=True, check=True, timeout=120,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    report = json.loads(result.stdout)
    assert report["count"] == 50_000
    # 50,000 rows x 6 cells held as Python objects would be well over 100 MB
    assert report["grew_kib"] < 60 * 1024


def _openpyxl_rows(data: bytes) -> list[tuple[int, list]]:
    """What openpyxl's own read-only reader gives, trailing empty cells and empty rows dropped."""
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out = []
    workbook.worksheets[0].reset_dimensions()
    for number, values in enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1):
        values = list(values)
        while values and values[-1] is None:
            values.pop()
        if values:
            out.append((number, values))
    workbook.close()
    return out


def test_xlsx_reader_gives_what_openpyxl_gives():
    """The streaming reader (expat) and openpyxl agree on every kind of cell Excel writes."""
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.append(["文字", "整数", "小数", "日付", "日時", "真偽", "式", "空"])
    ws.append(["小樽市", 12033, 0.5, dt.date(2015, 10, 1), dt.datetime(2015, 10, 1, 9, 30), True, "=1+1", None])
    ws.append(["=文字列ではない", -3, 1.5e-7, dt.date(1900, 3, 1), dt.datetime(2016, 2, 29), False, None, "x"])
    ws["A5"] = "  "
    ws["H7"] = "端"
    ws["C8"] = 1e20
    ws["D8"] = dt.time(12, 30)
    ws["E8"] = dt.timedelta(hours=30)
    ws["E8"].number_format = "[h]:mm:ss"
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()
    # Excel writes strings to a shared table, with phonetic readings (ふりがな) and rich-text runs,
    # and error cells, formula text results; openpyxl writes none of these, so patch them in.
    sst = ('<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
           '<si><r><t>小樽</t></r><r><t>市</t></r><rPh sb="0" eb="2"><t>オタル</t></rPh></si><si><t>端</t></si></sst>')
    members = {
        "xl/sharedStrings.xml": lambda _: sst.encode(),
        "[Content_Types].xml": lambda xml: xml.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" '
            b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'),
        "xl/_rels/workbook.xml.rels": lambda xml: xml.replace(b"</Relationships>", b'<Relationship Id="rIdS" '
            b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
            b'Target="sharedStrings.xml"/></Relationships>'),
        "xl/worksheets/sheet1.xml": lambda xml: re.sub(
            rb'<c r="H7" t="inlineStr">.*?</c>', b'<c r="H7" t="s"><v>1</v></c>', re.sub(
                rb'<c r="A2" t="inlineStr">.*?</c>', b'<c r="A2" t="s"><v>0</v></c>', xml)).replace(
            b"</sheetData>", b'<row r="9"><c r="A9" t="str"><f>A1</f><v>text</v></c><c r="B9" t="inlineStr"><is>'
                             b'<t>inline</t><rPh sb="0" eb="1"><t>x</t></rPh></is></c><c r="G9" t="e"><v>#N/A</v></c></row></sheetData>'),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in [*src.namelist(), "xl/sharedStrings.xml"]:
            body = src.read(name) if name in src.namelist() else b""
            dst.writestr(name, members[name](body) if name in members else body)
    data = out.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        sheet_xml = zf.read("xl/worksheets/sheet1.xml")
        assert b'<c r="A2" t="s">' in sheet_xml and b'<c r="H7" t="s">' in sheet_xml and b't="e"' in sheet_xml
    with open_table(data, "x.xlsx", ["文字", "整数", "小数", "日付", "日時", "真偽", "式", "空"], strict_order=False) as reader:
        mine = [(1, ["文字", "整数", "小数", "日付", "日時", "真偽", "式", "空"])] + [
            (r.row_number, [r[h] for h in reader.headers]) for r in reader]
    for i, (number, values) in enumerate(mine):
        while values and values[-1] is None:
            values.pop()
        mine[i] = (number, values)
    expected = [(n, v) for n, v in _openpyxl_rows(data) if any(x is not None and str(x).strip() for x in v)]
    assert mine == expected
    assert mine[1][1][0] == "小樽市" and isinstance(mine[1][1][3], dt.datetime) and mine[3][1][7] == "端"
    assert mine[-1][1] == ["text", "inline", None, None, None, None, "#N/A"]
