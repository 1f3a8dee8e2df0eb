"""Upload checks, names and text extraction (pmo.core.files): FILE-01 to FILE-06.

Every hostile file is generated here at test time; nothing binary is committed.
"""

import io
import json
import re
import stat
import struct
import subprocess
import sys
import textwrap
import time
import unicodedata
import zipfile
import zlib
from pathlib import Path

import docx
import openpyxl
import pytest
from pptx import Presentation
from pptx.util import Inches

from pmo.core.files import (
    KINDS,
    MIME_TYPES,
    UploadRejected,
    ZipLimits,
    check_archive,
    content_disposition,
    extract_text,
    inspect_upload,
    safe_display_name,
)

MB = 1024 * 1024
ALL = set(KINDS)
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


# --- builders ---------------------------------------------------------------------------------


def make_pdf(text="Hello PMO report"):
    """A minimal valid one-page PDF with real text, offsets computed so the xref is exact."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_xlsx(text="令和6年度 進捗報告"):
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.title = "進捗"
    ws.append(["団体名", "コメント"])
    ws.append(["テスト市", text])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def make_docx(text="報告書の本文です"):
    document = docx.Document()
    document.add_paragraph(text)
    table = document.add_table(rows=1, cols=1)
    table.cell(0, 0).text = "表の中身"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pptx(text="会議資料のスライド"):
    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    slide.shapes.title.text = text
    box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1))
    box.text_frame.text = "補足テキスト"
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def make_zip(entries, compression=zipfile.ZIP_DEFLATED):
    """entries: list of (name or ZipInfo, bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, body in entries:
            zf.writestr(name, body)
    return buffer.getvalue()


def rewrite_zip(data, changes=None, add=()):
    """Copy an archive, changing some members' bytes and adding members."""
    changes = changes or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename in changes:
                body = changes[info.filename](body)
            dst.writestr(info.filename, body)
        for name, body in add:
            dst.writestr(name, body)
    return out.getvalue()


def zeros_zip(size):
    """A ZIP with one member of ``size`` zero bytes, built without compressing ``size`` bytes.

    After a full flush deflate output depends only on the input that follows, so one
    compressed MiB of zeros can be repeated; the CRC is computed over a generator of chunks.
    """
    chunk = bytes(MB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = size // MB
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    crc = 0
    for piece in (chunk for _ in range(count)):
        crc = zlib.crc32(piece, crc)
    compressed_size = len(block) * count + len(tail)
    name = b"zeros.bin"
    local = struct.pack(
        "<4sHHHHHLLLHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, compressed_size, size, len(name), 0
    )
    body = local + name + block * count + tail
    central = struct.pack(
        "<4sHHHHHHLLLHHHHHLL", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, compressed_size, size,
        len(name), 0, 0, 0, 0, 0, 0,
    ) + name
    end = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + end


def with_cp932_member_name(name):
    """A ZIP whose member name is CP932 without the UTF-8 flag, as Windows Explorer writes it."""
    raw = name.encode("cp932")
    placeholder = b"X" * len(raw)
    data = make_zip([(placeholder.decode(), b"hello")])
    assert data.count(placeholder) == 2
    return data.replace(placeholder, raw)


@pytest.fixture(scope="module")
def gib_zip():
    return zeros_zip(1024 * MB)


def rejected(data, filename, allowed=ALL, max_bytes=50 * MB, **kwargs):
    """Assert fast rejection with a Japanese message; return the exception."""
    started = time.perf_counter()
    with pytest.raises(UploadRejected) as info:
        inspect_upload(data, filename, allowed, max_bytes, **kwargs)
    assert time.perf_counter() - started < 2.0
    assert JAPANESE.search(info.value.message), info.value.message
    assert str(info.value) == info.value.message
    return info.value


# --- accepted files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "builder", "kind", "expected_text"),
    [
        ("報告書.pdf", make_pdf, "pdf", "Hello PMO report"),
        ("令和6年度_進捗報告.xlsx", make_xlsx, "xlsx", "令和6年度 進捗報告"),
        ("報告書.docx", make_docx, "docx", "報告書の本文です"),
        ("会議資料.pptx", make_pptx, "pptx", "会議資料のスライド"),
    ],
)
def test_real_documents_are_accepted_and_text_extracted(filename, builder, kind, expected_text):
    data = builder()
    info = inspect_upload(data, filename, ALL, 10 * MB)
    assert info.kind == kind
    assert info.mime_type == MIME_TYPES[kind]
    assert info.size == len(data)
    assert re.fullmatch(r"[0-9a-f]{64}", info.sha256)
    assert info.display_name == filename
    assert expected_text in extract_text(data, kind)


def test_extracted_text_includes_tables_and_notes():
    assert "表の中身" in extract_text(make_docx(), "docx")
    assert "補足テキスト" in extract_text(make_pptx(), "pptx")
    assert "テスト市" in extract_text(make_xlsx(), "xlsx")


def test_pdf_from_pypdf_writer_is_accepted():
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    assert inspect_upload(buffer.getvalue(), "blank.pdf", {"pdf"}, MB).kind == "pdf"
    assert extract_text(buffer.getvalue(), "pdf") == ""


@pytest.mark.parametrize(
    ("data", "encoding", "mime"),
    [
        ("団体名,金額\nテスト市,100\n".encode(), "utf-8", "text/csv; charset=utf-8"),
        ("\ufeff団体名,金額\n①㈱髙～,100\n".encode(), "utf-8", "text/csv; charset=utf-8"),
        ("ｺﾒﾝﾄ,金額\n①㈱髙～,100\n".encode("cp932"), "cp932", "text/csv; charset=shift_jis"),
    ],
)
def test_csv_is_accepted(data, encoding, mime):
    info = inspect_upload(data, "一覧.csv", {"csv"}, MB)
    assert (info.kind, info.encoding, info.mime_type) == ("csv", encoding, mime)
    assert "金額" in extract_text(data, "csv")


def test_csv_starting_with_a_bracketed_japanese_header_is_text():
    assert inspect_upload("<注>,金額\n1,2\n".encode(), "a.csv", {"csv"}, MB).kind == "csv"


def test_zip_of_documents_is_accepted():
    data = make_zip([("資料/報告書.pdf", make_pdf()), ("資料/集計.xlsx", make_xlsx()), ("資料/", b"")])
    info = inspect_upload(data, "提出資料.zip", {"zip"}, 10 * MB)
    assert info.kind == "zip"
    assert "資料/報告書.pdf" in extract_text(data, "zip")


def test_zip_with_cp932_names_containing_0x5c_is_accepted():
    # 表 and ソ end in byte 0x5C, which a cp437 reading turns into a backslash
    data = with_cp932_member_name("表ソ.txt")
    assert inspect_upload(data, "a.zip", {"zip"}, MB).kind == "zip"
    assert "表ソ.txt" in extract_text(data, "zip")


class _Unseekable:
    """An output stream zipfile cannot seek in, so it writes data descriptors (as macOS does)."""

    def __init__(self):
        self.buffer = io.BytesIO()

    def write(self, data):
        return self.buffer.write(data)

    def flush(self):
        pass


@pytest.mark.parametrize("zip64", [False, True])
def test_zip_with_data_descriptors_is_accepted(zip64):
    out = _Unseekable()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("資料/メモ.txt", "w", force_zip64=zip64) as fh:
            fh.write("議事メモ".encode() * 1000)
        zf.writestr("報告書.pdf", make_pdf())
    data = out.buffer.getvalue()
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x08
    assert inspect_upload(data, "a.zip", {"zip"}, MB).kind == "zip"


def test_zeros_zip_builder_makes_a_valid_archive():
    with zipfile.ZipFile(io.BytesIO(zeros_zip(8 * MB))) as zf:
        assert zf.testzip() is None
        assert zf.read("zeros.bin") == bytes(8 * MB)


def test_display_name_cleaned():
    info = inspect_upload(make_pdf(), "C:\\Users\\職員\\報告書\u202e.pdf", {"pdf"}, MB)
    assert info.display_name == "報告書.pdf"


# --- FILE-01: type allowlist and content checks -----------------------------------------------

HTML = b"<!DOCTYPE html><html><script>alert(1)</script></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200)


def xlsm():
    """A real workbook that carries a VBA project (what Excel saves as .xlsm)."""
    return rewrite_zip(make_xlsx(), add=[("xl/vbaProject.bin", b"\xd0\xcf\x11\xe0fake vba")])


def xlsm_content_type():
    return rewrite_zip(make_xlsx(), changes={
        "[Content_Types].xml": lambda xml: xml.replace(
            b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
        )
    })


@pytest.mark.parametrize(
    ("data", "filename", "code", "phrase"),
    [
        (HTML, "report.pdf", "extension_mismatch", "HTML"),
        (SVG, "image.svg", "active_content", ".svg"),
        (SVG, "image.pdf", "extension_mismatch", "HTML/SVG/XML"),
        (EXE, "tool.xlsx", "extension_mismatch", "実行ファイル"),
        (EXE, "tool.exe", "executable", "実行ファイル"),
        (xlsm(), "macro.xlsm", "macro", "マクロ"),
        (xlsm(), "macro.xlsx", "macro", "マクロ"),
        (xlsm_content_type(), "macro.xlsx", "macro", "マクロ"),
        (make_docx(), "macro.docm", "macro", "マクロ"),
        (make_xlsx(), "binary.xlsb", "macro", "マクロ"),
        (HTML, "page.html", "active_content", ".html"),
        (b"alert(1)", "script.js", "active_content", ".js"),
        (make_pdf(), "a.pdf.exe", "executable", ".exe"),
        (make_pdf(), "a.exe.pdf", "executable", ".exe"),
        (make_pdf(), "a.pdf.html", "active_content", ".html"),
        (b"", "empty.pdf", "empty", "空"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "old.xls", "legacy_office", "旧形式"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "old.xlsx", "extension_mismatch", "旧形式"),
        (make_pdf(), "noextension", "no_extension", "拡張子"),
        (make_pdf(), "photo.png", "not_allowed", ".png"),
        (make_docx(), "renamed.xlsx", "extension_mismatch", "Word"),
        (make_xlsx(), "renamed.zip", "extension_mismatch", "Office文書"),
        (make_zip([("a.txt", b"x")]), "fake.docx", "not_ooxml", "Content_Types"),
        (b"PK\x03\x04" + bytes(100), "broken.xlsx", "zip_corrupt", "壊れて"),
        (b"a,b\n1,\x00\n", "with_nul.csv", "csv_binary", "NUL"),
        (b"a,b\n\xff\xfe\xfd,1\n", "garbage.csv", "csv_encoding", "文字コード"),
        ("名前\n".encode("utf-16"), "utf16.csv", "extension_mismatch", "UTF-16"),
        (HTML, "table.csv", "extension_mismatch", "HTML"),
        (make_pdf(), "text.csv", "extension_mismatch", "PDF"),
    ],
)
def test_bad_uploads_are_rejected(data, filename, code, phrase):
    error = rejected(data, filename)
    assert error.code == code, error.message
    assert phrase in error.message


def test_kind_outside_the_feature_allowlist():
    error = rejected(make_xlsx(), "集計.xlsx", allowed={"pdf"})
    assert error.code == "not_allowed"
    assert "受け付ける形式: PDF" in error.message


def test_size_limit():
    error = rejected(make_pdf(), "big.pdf", max_bytes=100)
    assert error.code == "too_large"


def test_unknown_kind_in_allowlist_is_a_programming_error():
    with pytest.raises(ValueError):
        inspect_upload(make_pdf(), "a.pdf", {"pdf", "exe"}, MB)


# --- FILE-02: archive bombs -------------------------------------------------------------------


def test_gib_of_zeros(gib_zip):
    assert len(gib_zip) < 2 * MB
    error = rejected(gib_zip, "bomb.zip")
    assert error.code == "zip_entry_too_large"


def test_gib_of_zeros_as_xlsx(gib_zip):
    # the same bytes under an Office name: the archive checks run before any XML is parsed
    assert rejected(gib_zip, "bomb.xlsx").code == "zip_entry_too_large"


def test_ten_thousand_entries():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for i in range(10_000):
            zf.writestr(f"f{i}.txt", b"")
    assert rejected(buffer.getvalue(), "many.zip").code == "zip_too_many_entries"


def test_total_declared_size_limit():
    data = make_zip([(f"part{i}.txt", b"a" * (3 * MB)) for i in range(4)])
    limits = ZipLimits(max_total_size=10 * MB, max_ratio=10_000)
    assert rejected(data, "a.zip", limits=limits).code == "zip_too_large"


def test_compression_ratio_limit():
    data = make_zip([("x.txt", b"a" * (20 * MB))])
    assert rejected(data, "ratio.zip").code == "zip_ratio"


def test_xlsx_with_inflating_sheet_under_small_limits():
    # FILE-02's "sheet1.xml inflates to 500 MB", scaled down with the limits so the test is quick
    padded = rewrite_zip(make_xlsx(), changes={
        "xl/worksheets/sheet1.xml":
            lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + b" " * (8 * MB), 1),
    })
    limits = ZipLimits(max_entry_size=4 * MB)
    assert rejected(padded, "big.xlsx", limits=limits).code == "zip_entry_too_large"


@pytest.mark.parametrize(
    "entries",
    [
        [("inner.zip", make_zip([("a.txt", b"x")]))],
        [("inner.bin", make_zip([("a.txt", b"x")]))],  # a ZIP by content, whatever its name
        [("archive.7z", b"7z\xbc\xaf\x27\x1c" + bytes(30))],
        [("data.gz", zlib.compress(b"x"))],
        [("backup.tar.gz", b"\x1f\x8b\x08" + bytes(30))],
    ],
)
def test_nested_archives_are_refused(entries):
    assert rejected(make_zip(entries), "outer.zip").code == "zip_nested"


def test_office_documents_inside_a_zip_are_opaque_members():
    assert inspect_upload(make_zip([("a.docx", make_docx())]), "ok.zip", {"zip"}, MB).kind == "zip"


@pytest.mark.parametrize(("name", "code"), [("tool.exe", "executable"), ("x/index.html", "active_content"),
                                            ("m.xlsm", "macro")])
def test_active_members_inside_a_zip_are_refused(name, code):
    assert rejected(make_zip([(name, b"x")]), "outer.zip").code == code


def patch_sizes(data, header, offset, value):
    """Overwrite the uncompressed-size field of every header with signature ``header``."""
    patched = bytearray(data)
    position = patched.find(header)
    while position != -1:
        struct.pack_into("<L", patched, position + offset, value)
        position = patched.find(header, position + 4)
    return bytes(patched)


def test_central_directory_understating_sizes():
    data = make_zip([("big.txt", bytes(5 * MB))])
    understated = patch_sizes(data, b"PK\x01\x02", 24, 1000)  # central directory: 1000 bytes
    error = rejected(understated, "liar.zip")
    assert error.code == "zip_size_mismatch"


def test_central_directory_and_local_header_both_understating():
    data = make_zip([("big.txt", bytes(5 * MB))])
    understated = patch_sizes(patch_sizes(data, b"PK\x01\x02", 24, 1000), b"PK\x03\x04", 22, 1000)
    error = rejected(understated, "liar.zip")
    assert error.code in ("zip_size_mismatch", "zip_corrupt")  # stops after 1000 bytes: CRC fails


def test_encrypted_entries_are_refused():
    data = bytearray(make_zip([("secret.txt", b"x")]))
    for header, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = data.find(header)
        struct.pack_into("<H", data, position + offset, 1)
    assert rejected(bytes(data), "locked.zip").code == "zip_encrypted"


def test_bombs_stay_within_memory_in_a_subprocess(tmp_path, gib_zip):
    """FILE-02 asks for bounded memory; measure peak RSS growth in a fresh interpreter."""
    cases = {
        "bomb.zip": gib_zip,
        "liar.zip": patch_sizes(make_zip([("big.txt", bytes(5 * MB))]), b"PK\x01\x02", 24, 1000),
        "bomb.xlsx": gib_zip,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    child = textwrap.dedent(
        """
        import json, resource, sys, pathlib
        from pmo.core.files import inspect_upload, UploadRejected, KINDS
        files = [(p.name, p.read_bytes()) for p in sorted(pathlib.Path(sys.argv[1]).iterdir())]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        codes = []
        for name, data in files:
            try:
                inspect_upload(data, name, set(KINDS), 50 * 1024 * 1024)
                codes.append("accepted")
            except UploadRejected as exc:
                codes.append(exc.code)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"codes": codes, "grew_kib": after - before}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True, check=True, timeout=60,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    report = json.loads(result.stdout)
    assert "accepted" not in report["codes"]
    assert report["grew_kib"] < 200 * 1024


# --- FILE-03: paths inside archives -----------------------------------------------------------


def symlink_entry():
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("member", "code"),
    [
        ("../../app.py", "zip_path_traversal"),
        ("ok/../../x.txt", "zip_path_traversal"),
        ("/etc/passwd", "zip_path_traversal"),
        ("C:\\x.txt", "zip_path_traversal"),
        ("C:/x.txt", "zip_path_traversal"),
        ("..\\..\\x", "zip_path_traversal"),
        (symlink_entry(), "zip_symlink"),
    ],
)
def test_dangerous_member_paths(member, code):
    data = make_zip([(member, b"/etc/passwd")])
    error = rejected(data, "paths.zip")
    assert error.code == code
    # the same members inside an Office file are refused too
    office = io.BytesIO(make_xlsx())
    with zipfile.ZipFile(office, "a") as zf:
        zf.writestr(member, b"x")
    assert rejected(office.getvalue(), "paths.xlsx").code == code


def test_duplicate_member_names():
    buffer = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a.txt", b"1")
        zf.writestr("a.txt", b"2")
    assert rejected(buffer.getvalue(), "dup.zip").code == "zip_duplicate"


# --- FILE-04: XML entities --------------------------------------------------------------------

XXE = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]>"
)
EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://evil.example/x.dtd">'


def with_prolog(data, member, prolog):
    def change(xml):
        body = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", xml)
        return prolog + body

    return rewrite_zip(data, changes={member: change})


@pytest.mark.parametrize("prolog", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "external-dtd"])
@pytest.mark.parametrize(
    ("builder", "filename", "member"),
    [
        (make_xlsx, "a.xlsx", "xl/worksheets/sheet1.xml"),
        (make_xlsx, "a.xlsx", "xl/workbook.xml"),
        (make_xlsx, "a.xlsx", "[Content_Types].xml"),
        (make_docx, "a.docx", "word/document.xml"),
        (make_pptx, "a.pptx", "ppt/slides/slide1.xml"),
    ],
)
def test_doctype_in_ooxml_is_refused(prolog, builder, filename, member):
    data = with_prolog(builder(), member, prolog)
    error = rejected(data, filename)
    assert error.code == "xml_doctype"
    assert "DOCTYPE" in error.message
    assert extract_text(data, filename.rsplit(".", 1)[1]) == ""


def test_doctype_hidden_after_a_long_comment_is_found():
    prolog = b'<?xml version="1.0"?><!--' + b"x" * (200 * 1024) + b"-->" + XXE[len(b'<?xml version="1.0"?>'):]
    data = with_prolog(make_xlsx(), "xl/worksheets/sheet1.xml", prolog)
    assert rejected(data, "a.xlsx").code == "xml_doctype"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-7"])
def test_non_utf8_xml_parts_are_refused(encoding):
    if encoding == "utf-16":
        change = lambda xml: xml.decode().encode("utf-16")  # noqa: E731
    else:
        change = lambda xml: b'<?xml version="1.0" encoding="UTF-7"?>' + xml  # noqa: E731
    data = rewrite_zip(make_xlsx(), changes={"xl/worksheets/sheet1.xml": change})
    assert rejected(data, "a.xlsx").code == "xml_encoding"


def test_activex_is_refused():
    data = rewrite_zip(make_docx(), add=[("word/activeX/activeX1.xml", b"<ax/>")])
    assert rejected(data, "a.docx").code == "activex"


def test_check_archive_can_be_called_directly():
    assert check_archive(make_xlsx(), "xlsx") is None
    with pytest.raises(UploadRejected):
        check_archive(make_docx(), "xlsx")


def test_defusedxml_is_active_for_openpyxl():
    import openpyxl.xml

    assert openpyxl.xml.DEFUSEDXML is True


# --- FILE-05 / FILE-06: names -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("報告書.pdf", "報告書.pdf"),
        ("令和6年度_進捗報告.xlsx", "令和6年度_進捗報告.xlsx"),
        (unicodedata.normalize("NFD", "データ連携ガイド.pdf"), "データ連携ガイド.pdf"),
        ("C:\\Users\\職員\\報告書.pdf", "報告書.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/abs/path/資料.docx", "資料.docx"),
        ("報告\x00書\r\n.pdf", "報告書.pdf"),
        ("請求書\u202efdp.exe", "請求書fdp.exe"),
        ("a<b>c:d\"e|f?g*.pdf", "a_b_c_d_e_f_g_.pdf"),
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ("report.pdf. . ", "report.pdf"),
        ("", "ファイル"),
        ("..", "ファイル"),
        ("　報告書.pdf　", "報告書.pdf"),
        ("👨\u200d👩\u200d👧.pdf", "👨\u200d👩\u200d👧.pdf"),
    ],
)
def test_safe_display_name(raw, expected):
    assert safe_display_name(raw) == expected


def test_safe_display_name_caps_length_and_keeps_extension():
    name = safe_display_name("進" * 300 + ".xlsx")
    assert len(name) == 120
    assert name.endswith("進.xlsx")
    assert len(safe_display_name("x" * 300)) == 120


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("報告書.pdf",
         "attachment; filename=\"download.pdf\"; filename*=UTF-8''%E5%A0%B1%E5%91%8A%E6%9B%B8.pdf"),
        ("report 2024.xlsx",
         "attachment; filename=\"report 2024.xlsx\"; filename*=UTF-8''report%202024.xlsx"),
        ("R6_進捗.csv", "attachment; filename=\"R6.csv\"; filename*=UTF-8''R6_%E9%80%B2%E6%8D%97.csv"),
    ],
)
def test_content_disposition(name, expected):
    assert content_disposition(name) == expected


def test_content_disposition_cannot_break_the_header():
    value = content_disposition('a";\r\nSet-Cookie: x=1; b="\\c.pdf')
    assert "\r" not in value and "\n" not in value
    fallback = re.search(r'filename="([^"]*)"', value).group(1)
    assert '"' not in fallback and "\\" not in fallback
    assert value.count('"') == 2
    assert re.fullmatch(r"[A-Za-z0-9%!#$&+\-.^_`|~]+", value.split("UTF-8''", 1)[1])


# --- extraction never raises ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.4 garbage", "pdf"),
        (make_pdf()[:200], "pdf"),
        (b"PK\x03\x04 not really", "xlsx"),
        (make_docx()[:500], "docx"),
        (make_pptx()[:-100], "pptx"),
        (b"\xff\xfe\xfd", "csv"),
        (b"", "pdf"),
        (b"x", "unknown-kind"),
    ],
)
def test_extract_text_never_raises(data, kind):
    assert extract_text(data, kind) == ""


def test_extract_text_is_bounded():
    data = ("あ" * 10_000 + "\n").encode() * 10
    assert len(extract_text(data, "csv", limit=5_000)) == 5_000
    assert len(extract_text(make_docx("長い" * 5_000), "docx", limit=1_000)) == 1_000
