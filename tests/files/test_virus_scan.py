"""FILE-08: every upload path is scanned by a real clamd; EICAR is refused, logged and audited; with
the scanner configured but down, uploads are refused (fail closed, docs/DECISIONS.md 6); without the
setting nothing is scanned and the status pages say so."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.audit.models import AuditEntry
from pmo.core import files
from pmo.core.scanner import ClamdScanner, ScannerUnavailable
from pmo.plans import imports
from pmo.plans.models import ImportJob
from pmo.procedures.models import Dataset
from pmo.subsidy.models import BaseTable, Estimate
from tests.conftest import CITY_A
from tests.documents.helpers import document_count, docx, pdf, upload
from tests.files.clamav import EICAR, SIGNATURE

INFECTED = "ウイルスが検出されたため受け付けられません"
UNAVAILABLE = "ウイルス検査を実行できないため、現在ファイルを受け付けられません"


@pytest.fixture
def scanning(app, clamd):
    app.config["CLAMD_SOCKET"] = clamd.socket_path
    return clamd


def _uploads(app) -> set[Path]:
    root = Path(app.instance_path) / "uploads"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _refusals(db_session, action="file.infected") -> list[AuditEntry]:
    db_session.expire_all()
    return list(db_session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)))


def _eicar_xlsx(headers: list[str]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(headers)
    sheet.append([EICAR.decode()] + [""] * (len(headers) - 1))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


# --- the client against a real clamd -------------------------------------------------------------


def test_clamd_client_gives_verdicts(clamd):
    """FILE-08: the INSTREAM client finds EICAR (also inside archives clamd unpacks) and passes clean files."""
    scanner = ClamdScanner(clamd.socket_path, timeout=10)
    assert scanner.ping() and scanner.version().startswith("ClamAV ")
    found = scanner.scan(b"prefix " + EICAR + b" suffix")
    assert found.infected and found.signature.startswith(SIGNATURE)
    assert scanner.scan(_zip({"readme.txt": EICAR})).infected
    assert scanner.scan(docx(EICAR.decode())).infected
    assert not scanner.scan(pdf("clean")).infected
    assert not scanner.scan(b"x" * (3 * 1024 * 1024)).infected  # several INSTREAM chunks
    with pytest.raises(ScannerUnavailable):
        ClamdScanner(clamd.socket_path + ".missing", timeout=2).scan(b"abc")


def test_inspect_upload_scans_only_when_a_scanner_is_installed(clamd):
    """FILE-08: outside an app (pure use of pmo.core.files) nothing is scanned; with a provider it is."""
    assert files.inspect_upload(b"a,b\n" + EICAR + b",1\n", "x.csv", {"csv"}, 1 << 20).kind == "csv"
    scanner = ClamdScanner(clamd.socket_path)
    files.set_scan_provider(lambda: lambda data, name, digest: files.scan_upload(scanner, data, name, digest))
    try:
        with pytest.raises(files.UploadRejected) as caught:
            files.inspect_upload(b"a,b\n" + EICAR + b",1\n", "x.csv", {"csv"}, 1 << 20)
        assert caught.value.code == "infected" and caught.value.detail.startswith(SIGNATURE)
        assert files.inspect_upload(b"a,b\n1,2\n", "x.csv", {"csv"}, 1 << 20).kind == "csv"
    finally:
        from pmo.web import scanning

        files.set_scan_provider(scanning._provider)


# --- every upload path ------------------------------------------------------------------------------


def test_documents_refuse_eicar_with_a_reason_and_audit_it(app, client, auth, make_user, db_session, scanning,
                                                           caplog):
    """FILE-08: documents (new and new version): EICAR in a docx, a zip and a csv is refused, nothing stored."""
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mhlw")
    auth.login(officer)
    before_docs, before_files = document_count(db_session), _uploads(app)
    with caplog.at_level(logging.WARNING, logger="pmo.files"):
        for name, data in {"手引き.docx": docx("本文 " + EICAR.decode()), "資料.zip": _zip({"a.txt": EICAR}),
                           "一覧.csv": b"a,b\n" + EICAR + b",1\n"}.items():
            response = upload(client, data, name)
            html = response.get_data(as_text=True)
            assert response.status_code == 200 and INFECTED in html and name in html, name
    assert document_count(db_session) == before_docs and _uploads(app) == before_files
    entries = _refusals(db_session)
    assert len(entries) == 3 and {e.outcome for e in entries} == {"denied"}
    assert all(e.actor_login == officer.login_id and e.after["signature"].startswith(SIGNATURE) for e in entries)
    assert {e.after["file"] for e in entries} == {"手引き.docx", "資料.zip", "一覧.csv"}
    assert sum("virus found" in r.getMessage() for r in caplog.records) == 3
    # a clean file still goes through the scanner and is accepted
    response = upload(client, pdf("clean"), "報告書.pdf")
    assert response.status_code == 302 and document_count(db_session) == before_docs + 1
    doc_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    version = client.post_form(f"/documents/{doc_id}/versions",
                               {"file": (io.BytesIO(docx(EICAR.decode())), "第2版.docx"), "change_note": "改訂"},
                               token_from=f"/documents/{doc_id}", content_type="multipart/form-data")
    assert INFECTED in version.get_data(as_text=True)
    assert len(_refusals(db_session)) == 4


def test_datasets_refuse_eicar(app, client, auth, make_user, db_session, scanning):
    """FILE-08: procedure data sets."""
    auth.login(make_user(Role.MINISTRY_OFFICER, ministry="mhlw"))
    before = db_session.scalar(sa.select(sa.func.count()).select_from(Dataset))
    response = client.post_form("/procedures/datasets/new", {
        "title": "レイアウト", "description": "", "change_note": "初版",
        "file": (io.BytesIO(_eicar_xlsx(["項目", "説明"])), "レイアウト.xlsx")},
        token_from="/procedures/datasets/new", content_type="multipart/form-data")
    assert INFECTED in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Dataset)) == before
    assert len(_refusals(db_session)) == 1


def test_estimates_and_base_tables_refuse_eicar(app, client, auth, db_session, scanning):
    """FILE-08: subsidy estimates (xlsx) and base tables (csv)."""
    from pmo.subsidy.tables import ESTIMATE_HEADERS

    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    url = f"/subsidy/bodies/{CITY_A}/estimates/new"
    response = client.post_form(url, {"fy": "2014", "system": "国民健康保険", "vendor": "A社",
                                      "file": (io.BytesIO(_eicar_xlsx(list(ESTIMATE_HEADERS))), "見積.xlsx")},
                                token_from=url, content_type="multipart/form-data")
    assert response.status_code == 422 and INFECTED in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(Estimate.id)) is None
    auth.logout()
    auth.login(role=Role.FINANCE_OFFICER, ministry="mhlw")
    tables = db_session.scalar(sa.select(sa.func.count()).select_from(BaseTable))
    data = b"fiscal_year,body_kind,system,population,amount_thousand_yen\n2016,prefecture," + EICAR + b",0,100\n"
    response = client.post_form("/subsidy/base-tables", {"file": (io.BytesIO(data), "表.csv")},
                                token_from="/subsidy/base-tables", content_type="multipart/form-data")
    assert response.status_code == 422 and INFECTED in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(BaseTable)) == tables
    assert len(_refusals(db_session)) == 2


def test_plan_imports_refuse_eicar_on_screen_and_at_the_console(app, client, auth, db_session, scanning, tmp_path):
    """FILE-08: plan imports, from the screen and from ``pmo plans import``."""
    from pmo.core.tabular import write_csv

    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    data = write_csv(imports.HEADERS, [[CITY_A, "小樽市", "E-4", "2015-09-01", "", "", "", "", "", EICAR.decode()]])
    token = client.csrf_token("/plans/import")
    response = client.post("/plans/import", data={"csrf_token": token, "batch_id": "virus1",
                                                   "file": (io.BytesIO(data), "plans.csv")},
                           content_type="multipart/form-data", follow_redirects=True)
    assert INFECTED in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(ImportJob.id).where(ImportJob.batch_id == "virus1")) is None
    assert len(_refusals(db_session)) == 1
    path = tmp_path / "plans.csv"
    path.write_bytes(data)
    result = app.test_cli_runner().invoke(args=["plans", "import", str(path)])
    assert result.exit_code == 1 and INFECTED in result.output


# --- scanner down, scanner off, status --------------------------------------------------------------


def test_a_stopped_scanner_refuses_every_upload(app, client, auth, make_user, db_session, scanning):
    """FILE-08: fail closed. With clamd configured but stopped, even a clean file is refused with a clear
    message and an audit entry; /healthz says "error" without naming the socket; nothing is stored."""
    officer = make_user(Role.MINISTRY_OFFICER, ministry="mhlw")
    auth.login(officer)
    before_docs, before_files = document_count(db_session), _uploads(app)
    scanning.stop()
    try:
        response = upload(client, pdf("clean"), "報告書.pdf")
        assert response.status_code == 200 and UNAVAILABLE in response.get_data(as_text=True)
        assert document_count(db_session) == before_docs and _uploads(app) == before_files
        entries = _refusals(db_session, "file.scan_unavailable")
        assert len(entries) == 1 and entries[0].after["file"] == "報告書.pdf"
        health = client.get("/healthz")
        assert health.get_json()["checks"]["virus_scanner"] == "error"
        assert scanning.socket_path not in health.get_data(as_text=True)
    finally:
        scanning.start()
    assert upload(client, pdf("clean"), "報告書.pdf").status_code == 302
    assert client.get("/healthz").get_json()["checks"]["virus_scanner"] == "ok"


def test_without_the_setting_nothing_is_scanned_and_the_status_says_so(app, client, auth, make_user, db_session):
    """FILE-08: scanning is off by default; /healthz and the system status page say so."""
    assert not app.config.get("CLAMD_SOCKET")
    assert client.get("/healthz").get_json()["checks"]["virus_scanner"] == "not_configured"
    auth.login(role=Role.SYSTEM_ADMIN)
    page = client.get("/ops/status").get_data(as_text=True)
    assert 'data-state="not_configured"' in page and "アップロードは検査されません" in page
    before = document_count(db_session)
    auth.logout()
    auth.login(make_user(Role.MINISTRY_OFFICER, ministry="mhlw"))
    assert upload(client, b"a,b\n" + EICAR + b",1\n", "一覧.csv").status_code == 302
    assert document_count(db_session) == before + 1


def test_status_page_shows_the_running_scanner_to_system_admins_only(app, client, auth, scanning):
    """FILE-08: the system status page names the engine's version; other roles get 403."""
    auth.login(role=Role.BODY_STAFF, body=CITY_A)
    assert client.get("/ops/status").status_code == 403
    auth.logout()
    auth.login(role=Role.SYSTEM_ADMIN)
    page = client.get("/ops/status").get_data(as_text=True)
    assert 'data-state="ok"' in page and "ClamAV" in page and "有効・稼働中" in page
    health = client.get("/healthz").get_json()
    assert health["checks"]["virus_scanner"] == "ok" and "ClamAV" not in json.dumps(health)
