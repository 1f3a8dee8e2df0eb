"""Builders shared by the information domains' tests: files, and uploading through the real endpoints."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import sqlalchemy as sa

from pmo.documents.models import Document
from pmo.documents.service import text_to_docx


def docx(text: str) -> bytes:
    return text_to_docx(text)


def pdf(text: str = "hello") -> bytes:
    """A tiny but well-formed PDF (one page, one line of ASCII text)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def xlsx_with(sheet_xml: bytes) -> bytes:
    """A minimal xlsx whose first sheet is ``sheet_xml`` (for entity attacks)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '</Types>'))
        zf.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
            '</Relationships>'))
        zf.writestr("xl/workbook.xml", (
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        zf.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
            '</Relationships>'))
        zf.writestr("xl/worksheets/sheet1.xml", sheet_xml)
    return buffer.getvalue()


def upload(client: Any, data: bytes, filename: str, title: str = "テスト文書", publish: bool = True, **fields: Any) -> Any:
    """POST the new-document form with a file, as the logged-in officer."""
    form = {"title": title, "summary": fields.pop("summary", ""), "field": fields.pop("field", "common"),
            "audience": fields.pop("audience", "all"), "tags": fields.pop("tags", ""),
            "publish_from": fields.pop("publish_from", ""), "publish_until": fields.pop("publish_until", ""),
            "file": (io.BytesIO(data), filename)}
    if publish:
        form["publish_now"] = "y"
    return client.post_form("/documents/new", form, token_from="/documents/new", content_type="multipart/form-data")


def created_id(response: Any) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    match = re.search(r"/documents/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def add_version(client: Any, doc_id: int, data: bytes, filename: str, note: str = "内容を更新") -> Any:
    return client.post_form(f"/documents/{doc_id}/versions", {"file": (io.BytesIO(data), filename), "change_note": note},
                            token_from=f"/documents/{doc_id}", content_type="multipart/form-data")


def document_count(db_session: Any) -> int:
    return db_session.scalar(sa.select(sa.func.count()).select_from(Document)) or 0
