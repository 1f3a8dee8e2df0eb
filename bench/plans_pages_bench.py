"""Single-request time of the plan pages on the demo data, beside a floor measured in the same run.

Run against a database that `pmo demo` has filled (the demo accounts and 1,788 bodies' plans):

    PMO_DATABASE_URL=… PMO_INSTANCE_PATH=… PYTHONPATH=. .venv/bin/python bench/plans_pages_bench.py \
        --password <demo password> [--repeat 30]

Each page is requested in-process (Flask test client, no network) by its demo account; the
figure is the fastest and the median of ``--repeat`` requests, wall and CPU of this process
(the database's own CPU is not in the CPU column). The floor is the smallest logged-in page
(the upload form): what every request costs for the session, the account and the layout.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from pmo import create_app

BASE = "https://localhost"
PAGES = [
    ("floor: upload form", "demo-staff", "/plans/import"),
    ("管下団体の進捗 (北海道, 181 bodies)", "demo-pref", "/plans/prefecture"),
    ("plan sheet, read-only (prefecture)", "demo-pref", "/plans/012033"),
    ("plan sheet, editable (body staff)", "demo-staff", "/plans/012033"),
    ("plan history", "demo-staff", "/plans/012033/history"),
    ("national page", "demo-ministry", "/plans/national"),
]


def client_for(app, login_id: str, password: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/login", base_url=BASE).get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post("/login", base_url=BASE, headers={"Referer": f"{BASE}/login"},
                           data={"csrf_token": token, "login_id": login_id, "password": password, "next": "/"})
    if response.status_code != 302:
        raise SystemExit(f"login failed for {login_id} ({response.status_code}): run `pmo demo` first")
    return client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--password", required=True)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    app = create_app()
    clients = {}
    floor = None
    for label, login_id, path in PAGES:
        if login_id not in clients:
            clients[login_id] = client_for(app, login_id, args.password)
        client = clients[login_id]
        walls, cpus = [], []
        for n in range(args.repeat + 2):
            wall, cpu = time.perf_counter(), time.process_time()
            response = client.get(path, base_url=BASE)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert response.status_code == 200, (path, response.status_code)
            if n >= 2:  # the first requests warm the caches
                walls.append(wall)
                cpus.append(cpu)
        best, median, cpu = min(walls) * 1000, statistics.median(walls) * 1000, min(cpus) * 1000
        floor = floor or best
        print(f"{label:<40} {path:<24} best {best:7.1f} ms  median {median:7.1f} ms  cpu {cpu:6.1f} ms  "
              f"= {best / floor:4.1f}× floor  ({len(response.data) // 1024} KB)")


if __name__ == "__main__":
    main()
