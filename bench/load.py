"""Load test: N concurrent users walk the real screens of their roles for a while.

Each demo account logs in once through the real forms (password, then the TOTP code where the
account has MFA); each virtual user takes one account's session and the links of its menu, then
requests them in random order with a short think time. Prints
requests per second, p50/p95/p99 latency, the error count, and per-endpoint p95.

    python bench/load.py --base http://127.0.0.1:5000 --users 100 --seconds 300 --password …

Only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import statistics
import threading
import time
import urllib.parse
from collections import defaultdict

DEMO_LOGINS = ["demo-staff", "demo-admin", "demo-pref", "demo-ministry", "demo-finance", "demo-sysadmin"]


class Client:
    """A tiny keep-alive HTTP client with a cookie jar (one virtual user)."""

    def __init__(self, base: str) -> None:
        parts = urllib.parse.urlsplit(base)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("load tests only target this machine (loopback)")
        self.host, self.port = parts.hostname, parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.location = ""  # of the last response

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, float]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   "Referer": f"http://{self.host}:{self.port}/", "User-Agent": "pmo-load"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read().decode("utf-8", "replace")
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt == 2:
                    raise
        elapsed = time.perf_counter() - started
        self.location = response.getheader("Location") or ""
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, data, elapsed


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def login(client: Client, login_id: str, password: str, totp_secret: str | None) -> list[str]:
    """Log in through the real forms: the password, then the TOTP code for accounts that have MFA."""
    _, page, _ = client.request("GET", "/login")
    body = urllib.parse.urlencode({"csrf_token": _csrf(page), "login_id": login_id, "password": password, "next": "/"})
    status, _, _ = client.request("POST", "/login", body)
    if status != 302:
        raise RuntimeError(f"login failed for {login_id}: {status}")
    if client.location.endswith("/login/mfa"):  # the second step (AUTH-05)
        _, page, _ = client.request("GET", "/login/mfa")
        if not totp_secret:
            raise RuntimeError(f"{login_id} needs a TOTP code: pass --totp-secret (pmo demo --totp-secret)")
        import pyotp

        code = pyotp.TOTP(totp_secret).now()
        status, _, _ = client.request("POST", "/login/mfa", urllib.parse.urlencode({"csrf_token": _csrf(page),
                                                                                     "code": code}))
        if status != 302:
            raise RuntimeError(f"second step failed for {login_id}: {status}")
    _, home, _ = client.request("GET", "/")
    nav = re.search(r'<nav class="main-nav".*?</nav>', home, re.S)
    links = re.findall(r'href="(/[^"]*)"', nav.group(0)) if nav else ["/"]
    return links


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:5000")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--think", type=float, default=0.5, help="mean pause between a user's requests (s)")
    parser.add_argument("--password", required=True)
    parser.add_argument("--totp-secret", default=None,
                        help="the authenticator enrolled by `pmo demo --totp-secret` for the accounts that need MFA")
    args = parser.parse_args()

    # One login per demo account, before the clock starts: a TOTP code is accepted once per account
    # and 30-second step (AUTH-05), so the virtual users of one account share its session.
    accounts: dict[str, tuple[dict[str, str], list[str]]] = {}
    for login_id in DEMO_LOGINS:
        client = Client(args.base)
        links = login(client, login_id, args.password, args.totp_secret)
        accounts[login_id] = (dict(client.cookies), links)

    results: list[tuple[str, int, float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    ready = threading.Barrier(args.users + 1)

    def user(n: int) -> None:
        client = Client(args.base)
        rnd = random.Random(n)
        cookies, links = accounts[DEMO_LOGINS[n % len(DEMO_LOGINS)]]
        client.cookies.update(cookies)
        ready.wait()
        while time.monotonic() < deadline:
            path = rnd.choice(links)
            try:
                status, _, elapsed = client.request("GET", path)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(f"{path}: {exc}")
                continue
            with lock:
                results.append((path.split("?")[0], status, elapsed, time.monotonic()))
                if status >= 400:
                    errors.append(f"{path}: HTTP {status}")
            time.sleep(rnd.expovariate(1 / args.think))

    threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(args.users)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    duration = time.monotonic() - started
    latencies = sorted(r[2] for r in results)

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else float("nan")

    print(f"users={args.users} seconds={duration:.0f} requests={len(results)} rps={len(results) / duration:.1f}")
    print(f"latency ms: p50={pct(latencies, .50):.0f} p95={pct(latencies, .95):.0f} p99={pct(latencies, .99):.0f} "
          f"max={latencies[-1] * 1000 if latencies else float('nan'):.0f}")
    print(f"errors={len(errors)}")
    for error in errors[:10]:
        print("  ", error)
    by_minute: dict[int, list[float]] = defaultdict(list)
    for *_, elapsed, at in results:
        by_minute[int((at - started) // 60)].append(elapsed)
    print("per minute (p95 ms, requests): " + "  ".join(
        f"{minute + 1}: {pct(sorted(values), .95):.0f} ({len(values)})" for minute, values in sorted(by_minute.items())))
    by_path: dict[str, list[float]] = defaultdict(list)
    for path, _, elapsed, _at in results:
        by_path[path].append(elapsed)
    print("per page (p95 ms, count):")
    for path, values in sorted(by_path.items(), key=lambda kv: -pct(sorted(kv[1]), .95)):
        values.sort()
        print(f"  {path:<40} {pct(values, .95):7.0f} {len(values):6d}  median {statistics.median(values) * 1000:.0f}")


if __name__ == "__main__":
    main()
