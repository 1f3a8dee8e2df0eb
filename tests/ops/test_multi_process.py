"""More than one machine (issue 7 item 4): two app processes, started with ``pmo serve`` (gunicorn) on
two ports, share one database, one uploads folder and one search index, with one separate indexer
process, as docs/DEPLOYMENT.md sets them up. Everything goes over real HTTP with CSRF tokens.

On the PostgreSQL run the processes share a PostgreSQL database of their own; on the SQLite run they
share one SQLite file, which is what ``pmo serve --workers 2`` does on a single machine.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
import sqlalchemy as sa

from pmo import create_app
from pmo.accounts import mfa
from pmo.accounts.mfa_service import enrol_known_secret
from pmo.accounts.models import Role, User
from pmo.accounts.service import THROTTLED_MESSAGE, hash_password
from pmo.cli import upgrade_database
from pmo.core import clock
from pmo.orgs.models import Body, Ministry
from pmo.paths import data_dir
from tests.conftest import CITY_A
from tests.databases import own_database
from tests.documents.helpers import pdf

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "multi-machine-password-2015"
METRICS_TOKEN = secrets.token_hex(20)
START_TIMEOUT = 90
REDIS_URL = os.environ.get("PMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Visitor:
    """One browser: a cookie jar it carries to whichever server it talks to (as a load balancer would)."""

    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, port: int, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        sent = {"Host": f"127.0.0.1:{port}", "Referer": f"http://127.0.0.1:{port}/", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=sent)
            raw = conn.getresponse()
            response = Response(raw.status, raw.headers, raw.read())
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                expired = morsel["max-age"] == "0" or "1970" in morsel["expires"]
                if expired or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, port: int, path: str) -> Response:
        return self.request(port, "GET", path)

    def csrf_token(self, port: int, path: str) -> str:
        page = self.get(port, path)
        assert page.status == 200, (path, page.status)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page.text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post_form(self, port: int, path: str, data: dict[str, str], token_from: str,
                  token_port: int | None = None) -> Response:
        form = {**data, "csrf_token": self.csrf_token(token_port or port, token_from)}
        return self.request(port, "POST", path, urlencode(form).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def post_multipart(self, port: int, path: str, data: dict[str, str], files: dict[str, tuple[str, bytes, str]],
                       token_from: str) -> Response:
        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for name, value in {**data, "csrf_token": self.csrf_token(port, token_from)}.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, content, mime) in files.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                         f"Content-Type: {mime}\r\n\r\n".encode() + content + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request(port, "POST", path, b"".join(parts),
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def login(self, port: int, login_id: str, password: str = PASSWORD) -> Response:
        """The password, then (for a role that must use MFA) a TOTP code of TOTP_SECRET."""
        response = self.post_form(port, "/login", {"login_id": login_id, "password": password, "next": ""}, "/login")
        if response.status == 302 and response.headers.get("Location", "").endswith("/login/mfa"):
            code = mfa.code_at(TOTP_SECRET, mfa.time_step(clock.now()))
            response = self.post_form(port, "/login/mfa", {"code": code}, "/login/mfa")
        return response


TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@dataclass
class Cluster:
    ports: tuple[int, int]
    url: str
    shared: Path
    instances: tuple[Path, Path]
    env: dict[str, str]
    officer: str
    staff: str
    victim: str
    logs: list[Path]

    def log_tail(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs if p.exists())


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        # A session of its own, so the finalizer can stop gunicorn's master and workers together.
        return subprocess.Popen([sys.executable, "-m", "pmo", *args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


def _wait_until_serving(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server on port {port} exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if Visitor().get(port, "/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the server on port {port} did not answer /healthz in {START_TIMEOUT}s")


def _prepare_database(url: str, root: Path, secret_key: str) -> tuple[str, str, str]:
    """Seed the shared database; the officer (a role that must use MFA) is enrolled with TOTP_SECRET."""
    upgrade_database(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(root / "setup"), "SECRET_KEY": "s" * 64})
    from pmo.seeding import run_seed

    with app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        body_id = session.scalar(sa.select(Body.id).where(Body.code == CITY_A))
        ministry_id = session.scalar(sa.select(Ministry.id).where(Ministry.code == "mhlw"))
        for login_id, role, body, ministry in (("multi-officer", Role.MINISTRY_OFFICER, None, ministry_id),
                                               ("multi-staff", Role.BODY_STAFF, body_id, None),
                                               ("multi-victim", Role.BODY_STAFF, body_id, None)):
            session.add(User(login_id=login_id, display_name=f"複数台 {login_id}", email=f"{login_id}@example.jp",
                             role=role, body_id=body, ministry_id=ministry, password_hash=hash_password(PASSWORD),
                             must_change_password=False))
        session.flush()
        officer = session.scalar(sa.select(User).where(User.login_id == "multi-officer"))
        enrol_known_secret(session, officer, TOTP_SECRET, [secret_key])
        session.commit()
    app.extensions["pmo_db"].engine.dispose()
    return "multi-officer", "multi-staff", "multi-victim"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("multi")
    url = own_database(root, "multi")
    secret_key = secrets.token_hex(32)  # the same on every machine
    officer, staff, victim = _prepare_database(url, root, secret_key)
    shared = root / "shared"  # stands for the NFS mount every machine has at the same path
    instances = (root / "machine-a", root / "machine-b")
    ports = (_free_port(), _free_port())
    while ports[1] == ports[0]:
        ports = (ports[0], _free_port())
    env = {key: value for key, value in os.environ.items() if not key.startswith("PMO_")}
    env.update({
        "PMO_ENV": "production",
        "PMO_SECRET_KEY": secret_key,
        "PMO_DATABASE_URL": url,
        "PMO_UPLOAD_DIR": str(shared / "uploads"),
        "PMO_SEARCH_INDEX_DIR": str(shared / "search"),
        "PMO_SEARCH_INDEX_AFTER_COMMIT": "false",  # the app servers never write the index
        "PMO_METRICS_TOKEN": METRICS_TOKEN,
        "PMO_REDIS_URL": REDIS_URL,  # the /metrics counters of each machine's workers
        "PMO_REDIS_PREFIX": f"pmo-test-{secrets.token_hex(4)}:",
        "PMO_METRICS_FLUSH_SECONDS": "0.2",
        "PMO_LOG_LEVEL": "INFO",
    })
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for name, instance, port, workers in zip(("a", "b"), instances, ports, ("2", "1")):
            log = root / f"server-{name}.log"
            logs.append(log)
            processes.append(_start(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", workers,
                                     "--threads", "4"],
                                    {**env, "PMO_INSTANCE_PATH": str(instance), "PMO_METRICS_INSTANCE": f"machine-{name}"},
                                    log))
        indexer_log = root / "indexer.log"
        logs.append(indexer_log)
        processes.append(_start(["search", "index", "--watch", "0.3"],
                                {**env, "PMO_INSTANCE_PATH": str(root / "indexer")}, indexer_log))
        for port, process, log in zip(ports, processes, logs):
            _wait_until_serving(port, process, log)
        yield Cluster(ports, url, shared, instances, env, officer, staff, victim, logs)
    finally:
        for process in processes:
            _stop(process)
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{env['PMO_REDIS_PREFIX']}*"):
            client.delete(key)
        client.close()


def test_the_indexer_builds_the_missing_index_at_start_and_every_server_reports_it(cluster):
    deadline = time.monotonic() + 30
    for port in cluster.ports:
        while True:
            health = json.loads(Visitor().get(port, "/healthz").body)
            if health["checks"]["search_index"] == "ok":
                break
            assert time.monotonic() < deadline, f"{health}\n{cluster.log_tail()}"
            time.sleep(0.3)
        assert health["status"] == "ok" and health["checks"]["database"] == "ok"


def test_a_session_opened_on_one_server_works_on_the_other_and_a_logout_ends_it_on_both(cluster):
    a, b = cluster.ports
    visitor = Visitor()
    assert visitor.login(a, cluster.staff).status == 302
    assert visitor.get(a, "/account").status == 200
    on_b = visitor.get(b, "/account")
    assert on_b.status == 200 and cluster.staff in on_b.text
    copied = dict(visitor.cookies)  # an attacker's copy of the cookie, to replay after logout
    # Logging out through B, with the form loaded from A, ends the session on A as well (the session
    # is a database row, not the cookie).
    assert visitor.post_form(b, "/logout", {}, "/account", token_port=a).status == 302
    thief = Visitor(cookies=copied)
    for port in (a, b):
        response = thief.get(port, "/account")
        assert response.status == 302 and "/login" in response.headers["Location"], port


def test_login_throttling_counts_failures_on_both_servers(cluster):
    a, b = cluster.ports
    visitor = Visitor()
    # 5 failures per account in 5 minutes (the default): 3 on A and 2 on B. Neither server saw 5 itself.
    for port in (a, b, a, b, a):
        assert visitor.login(port, cluster.victim, "wrong password 2015").status == 200
    for port in (b, a):
        refused = visitor.login(port, cluster.victim)  # even the right password is refused now
        assert refused.status == 429, port
        assert html.escape(THROTTLED_MESSAGE, quote=False) in refused.text
    assert visitor.get(a, "/account").status == 302


def test_a_document_published_through_one_server_is_downloaded_and_found_through_the_other(cluster):
    a, b = cluster.ports
    officer, staff = Visitor(), Visitor()
    assert officer.login(a, cluster.officer).status == 302
    title = f"複数台構成の確認資料 {secrets.token_hex(3)}"
    content = pdf("shared storage")
    created = officer.post_multipart(
        a, "/documents/new",
        {"title": title, "summary": "共有ストレージの確認", "field": "common", "audience": "all", "tags": "",
         "publish_from": "", "publish_until": "", "publish_now": "y"},
        {"file": ("複数台_報告書.pdf", content, "application/pdf")}, "/documents/new")
    assert created.status == 302, created.text[:2000]
    doc_id = int(re.search(r"/documents/(\d+)$", created.headers["Location"]).group(1))

    # The file went to the shared uploads folder, not to machine A's own instance folder.
    stored = [p for p in (cluster.shared / "uploads").rglob("*") if p.is_file()]
    assert any(p.read_bytes() == content for p in stored)
    assert not any((instance / "uploads").exists() and any((instance / "uploads").rglob("*"))
                   for instance in cluster.instances)

    assert staff.login(b, cluster.staff).status == 302
    download = staff.get(b, f"/documents/{doc_id}/versions/1/download")
    assert download.status == 200
    assert download.body == content
    assert "filename*=UTF-8''" in download.headers["Content-Disposition"]

    # The indexer (a third process, the only writer) indexes it; B's searcher sees the new segment.
    deadline = time.monotonic() + 30
    while True:
        found = staff.get(b, "/search/?" + urlencode({"q": "複数台構成の確認資料"}))
        assert found.status == 200
        if f"/documents/{doc_id}" in found.text:
            break
        assert time.monotonic() < deadline, "the document was not found through B within 30 s:\n" + cluster.log_tail()
        time.sleep(0.3)
    assert (cluster.shared / "search" / "current").is_symlink()
    assert not any((instance / "search").exists() for instance in cluster.instances)

    # The officer on A finds it too, through the same index.
    assert f"/documents/{doc_id}" in officer.get(a, "/search/?" + urlencode({"q": "複数台構成の確認資料"})).text


def test_only_one_indexer_can_run(cluster, tmp_path):
    second = subprocess.run([sys.executable, "-m", "pmo", "search", "index", "--watch", "1"], check=False, cwd=ROOT,
                            env={**cluster.env, "PMO_INSTANCE_PATH": str(tmp_path / "indexer2")},
                            capture_output=True, timeout=60)
    assert second.returncode == 1
    assert "別の索引担当プロセスが既に動いています" in second.stderr.decode()


def _login_page_count(text: str) -> int:
    found = re.search(r'pmo_http_requests_total\{endpoint="accounts.login",method="GET",status="200"\} (\d+)', text)
    return int(found.group(1)) if found else 0


def test_metrics_answer_the_token_only_and_count_every_worker_of_a_machine(cluster):
    a, b = cluster.ports
    assert Visitor().get(a, "/metrics").status == 403  # loopback, yet refused

    def scrape(port: int) -> str:
        response = Visitor().request(port, "GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status == 200
        return response.text

    before_a, before_b = _login_page_count(scrape(a)), _login_page_count(scrape(b))
    for _ in range(6):  # machine A runs two gunicorn workers; these land on either
        assert Visitor().get(a, "/login").status == 200
    Visitor().get(b, "/login")
    deadline = time.monotonic() + 15  # each worker sends its counts every PMO_METRICS_FLUSH_SECONDS
    while _login_page_count(scrape(a)) < before_a + 6:
        assert time.monotonic() < deadline, cluster.log_tail()
        time.sleep(0.2)
    for _ in range(4):  # whichever worker answers the scrape, it reports both workers' requests
        text = scrape(a)
        assert "pmo_metrics_shared 1" in text
        assert _login_page_count(text) == before_a + 6
    while _login_page_count(scrape(b)) < before_b + 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _login_page_count(scrape(b)) == before_b + 1  # machine B keeps its own counters
