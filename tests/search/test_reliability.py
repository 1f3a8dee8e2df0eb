"""REL-09 through the portal, on a database of its own (so other processes and threads see the data):
(a) the index directory deleted, (b) garbage written into a segment, (c) the write lock held by another
process while a document is saved, (d) ``pmo search rebuild`` run in another process while users
search. No page ever answers 500; saves always commit; the outbox indexes what waited; after a
rebuild the hits equal a database query."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pmo import create_app
from pmo.accounts.mfa_service import enrol_known_secret
from pmo.accounts.models import Role, User
from pmo.accounts.service import hash_password
from pmo.cli import upgrade_database
from pmo.documents.models import Document
from pmo.paths import data_dir
from pmo.search.models import SearchOutbox
from tests.conftest import SECRET, TEST_PASSWORD, TEST_TOTP_SECRET, PortalClient, log_in
from tests.databases import own_database
from tests.documents.helpers import created_id, docx, upload

PAGES = ["/", "/documents/", "/faq/", "/search/?q=信頼性", "/api/v1/search?q=信頼性", "/healthz"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("rel09")
    url = own_database(tmp, "rel09")
    upgrade_database(url)
    config = {"DATABASE_URL": url, "SECRET_KEY": SECRET, "INSTANCE_PATH": str(tmp / "instance")}
    app = create_app({"TESTING": True, **config})
    app.test_client_class = PortalClient
    from pmo.seeding import run_seed

    with app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        ministry = session.scalar(sa.text("SELECT id FROM ministries WHERE code = 'mhlw'"))
        body = session.scalar(sa.text("SELECT id FROM bodies WHERE code = '012033'"))
        session.add_all([
            User(login_id="officer.rel09", display_name="文書 担当", email="o9@example.jp", ministry_id=ministry,
                 role=Role.MINISTRY_OFFICER, password_hash=hash_password(TEST_PASSWORD), must_change_password=False),
            User(login_id="staff.rel09", display_name="市 職員", email="s9@example.jp", body_id=body,
                 role=Role.BODY_STAFF, password_hash=hash_password(TEST_PASSWORD), must_change_password=False),
        ])
        session.flush()
        officer = session.scalar(sa.select(User).where(User.login_id == "officer.rel09"))
        enrol_known_secret(session, officer, TEST_TOTP_SECRET, [SECRET])
        session.commit()
    yield {"app": app, "config": config}
    app.extensions["pmo_db"].engine.dispose()


def _client(app, login_id: str) -> PortalClient:
    """A logged-in browser session that also carries the user's API token (for /api/v1/search)."""
    from pmo.accounts.service import actor_for, create_api_token

    client = app.test_client()
    log_in(client, app, login_id)
    with app.extensions["pmo_db"].session() as session:
        user = session.scalar(sa.select(User).where(User.login_id == login_id))
        _token, secret = create_api_token(session, actor_for(user), "rel09")
        session.commit()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def _index_root(app) -> Path:
    from pmo.search.views import backend

    return Path(backend(app).index_root)


def _cli(config: dict, *args: str) -> subprocess.CompletedProcess:
    """``pmo …`` in another process, on the same database and instance folder."""
    env = {**os.environ, "PMO_DATABASE_URL": config["DATABASE_URL"], "PMO_INSTANCE_PATH": config["INSTANCE_PATH"],
           "PMO_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pmo", *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def _hits(client: PortalClient, q: str) -> dict:
    response = client.get("/api/v1/search", query_string={"q": q})
    assert response.status_code == 200
    return response.get_json()


def _all_pages_answer(client: PortalClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code in (200, 503) and response.status_code != 500, (path, response.status_code)
        if path != "/healthz":
            assert response.status_code == 200, path


@pytest.fixture
def officer(portal) -> PortalClient:
    return _client(portal["app"], "officer.rel09")


def _publish(client: PortalClient, title: str) -> int:
    return created_id(upload(client, docx(f"{title} の本文。信頼性の確認。"), f"{title}.docx", title=title))


def test_a_deleted_index_dir_degrades_search_and_nothing_else(portal, officer):
    """REL-09 (a): with the index directory gone the app starts, every page answers, search says the
    index is being rebuilt or finds nothing, and a rebuild brings the hits back."""
    app = portal["app"]
    _publish(officer, "索引削除前の文書")
    assert _hits(officer, "索引削除前の文書")["total"] == 1
    shutil.rmtree(_index_root(app))
    restarted = create_app({"TESTING": True, **portal["config"]})  # a fresh process would start the same way
    restarted.test_client_class = PortalClient
    client = _client(restarted, "officer.rel09")
    _all_pages_answer(client)
    health = client.get("/healthz").get_json()
    assert health["checks"]["search_index"] in ("missing", "ok") and "/" not in str(health["checks"]["search_index"])
    doc_id = _publish(client, "索引なしで保存した文書")  # saving still works
    with restarted.extensions["pmo_db"].session(write=False) as session:
        assert session.get(Document, doc_id) is not None
    result = _cli(portal["config"], "search", "rebuild")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _hits(client, "索引削除前の文書")["total"] == 1
    assert _hits(client, "索引なしで保存した文書")["total"] == 1
    restarted.extensions["pmo_db"].engine.dispose()


def test_garbage_in_a_segment_degrades_search_and_nothing_else(portal, officer):
    """REL-09 (b): a segment overwritten with garbage: no 500 anywhere, search degrades with a message,
    saves commit, and a rebuild repairs the index."""
    app = portal["app"]
    assert _cli(portal["config"], "search", "rebuild").returncode == 0
    _publish(officer, "破損前の文書")
    assert _hits(officer, "破損前の文書")["total"] == 1
    current = (_index_root(app) / "current").resolve()
    segments = list(current.glob("*.seg"))
    assert segments
    for segment in segments:
        segment.write_bytes(os.urandom(4096))
    staff = _client(app, "staff.rel09")
    _all_pages_answer(staff)
    page = staff.get("/search/", query_string={"q": "破損前"}).get_data(as_text=True)
    degraded = _hits(staff, "破損前")
    assert degraded["degraded"] is True or degraded["total"] == 1
    if degraded["degraded"]:
        assert "検索索引を再構築中" in page
    _publish(officer, "破損中に保存した文書")
    assert _cli(portal["config"], "search", "rebuild").returncode == 0
    assert _hits(staff, "破損前の文書")["total"] == 1 and _hits(staff, "破損中に保存した文書")["total"] == 1


def test_a_write_lock_held_by_another_process_never_loses_a_save(portal, officer):
    """REL-09 (c): while another process holds Whoosh's write lock, saving a document commits and its
    index entry waits in the outbox; once the lock is free the next search indexes it."""
    app = portal["app"]
    assert _cli(portal["config"], "search", "rebuild").returncode == 0
    current = (_index_root(app) / "current").resolve()
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\nfrom whoosh.index import open_dir\n"
                                "w = open_dir(sys.argv[1]).writer()\nprint('HELD', flush=True)\ntime.sleep(600)\n"),
         str(current)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "HELD"
        response = upload(officer, docx("ロック中の文書の本文。"), "ロック中.docx", title="ロック中に保存した文書")
        assert response.status_code == 302  # the commit succeeded
        doc_id = created_id(response)
        with app.extensions["pmo_db"].session(write=False) as session:
            assert session.get(Document, doc_id) is not None
            waiting = session.scalar(sa.select(sa.func.count()).select_from(SearchOutbox)
                                     .where(SearchOutbox.done_dt.is_(None)))
        assert waiting >= 1
        _all_pages_answer(officer)
        assert _hits(officer, "ロック中に保存した文書")["total"] == 0
    finally:
        holder.kill()  # the lock is an fcntl lock: it ends with its process
        holder.wait(30)
        holder.stdout.close()
    assert _hits(officer, "ロック中に保存した文書")["total"] == 1
    with app.extensions["pmo_db"].session(write=False) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(SearchOutbox)
                              .where(SearchOutbox.done_dt.is_(None))) == 0


def test_rebuild_in_another_process_while_users_search(portal, officer):
    """REL-09 (d): ``pmo search rebuild`` (another process) swaps in a new generation while four users
    search: every answer is 200 and never empty or degraded; afterwards the hits equal a DB query."""
    app = portal["app"]
    assert _cli(portal["config"], "search", "rebuild").returncode == 0
    for n in range(3):
        _publish(officer, f"再構築中検索{n}")
    with app.extensions["pmo_db"].session(write=False) as session:
        expected = session.scalar(sa.select(sa.func.count()).select_from(Document)
                                  .where(Document.title.like("再構築中検索%")))
    assert expected == 3
    assert _hits(officer, "再構築中検索")["total"] == expected
    clients = [_client(app, "staff.rel09") for _ in range(4)]
    stop = threading.Event()
    answers: list[tuple[int, int, bool]] = []
    failures: list[BaseException] = []

    def search(client: PortalClient) -> None:
        try:
            while not stop.is_set():
                response = client.get("/api/v1/search", query_string={"q": "再構築中検索"})
                body = response.get_json() or {}
                answers.append((response.status_code, body.get("total", -1), bool(body.get("degraded"))))
                page = client.get("/search/", query_string={"q": "再構築中検索"})
                answers.append((page.status_code, expected, False))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    threads = [threading.Thread(target=search, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):  # twice: the rebuild is idempotent
            result = _cli(portal["config"], "search", "rebuild")
            assert result.returncode == 0, result.stderr[-2000:]
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not failures, failures[:3]
    assert len(answers) >= 8
    assert {status for status, _, _ in answers} == {200}
    assert all(total == expected and not degraded for _, total, degraded in answers), \
        sorted(set(answers))[:10]
    assert _hits(clients[0], "再構築中検索")["total"] == expected
