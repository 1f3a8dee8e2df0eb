"""Fuzzing, long form (issue 7 item 6): schemathesis against /api/v1/openapi.json with many cases per
operation, each sent with a real Bearer token of every role, on a fresh database holding every real
body (and, with --demo, the demo's plans, delays and subsidy data).

    python bench/api_fuzz.py [--cases 200] [--demo] [--database-url postgresql+psycopg://…/pmo_fuzz]

Prints the number of generated cases and requests per operation; exits 1 on any failure (a 500, an
undocumented status code or content type, a body that does not match its schema). The short form
in the suite is tests/api/test_fuzz.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pmo import create_app  # noqa: E402
from pmo.accounts import service as accounts  # noqa: E402
from pmo.accounts.models import Role, User  # noqa: E402
from pmo.cli import upgrade_database  # noqa: E402
from pmo.orgs.models import Body, Ministry  # noqa: E402
from pmo.paths import data_dir  # noqa: E402
from tests.api.fuzzing import fuzz_api  # noqa: E402

ROLES = [
    (Role.BODY_STAFF, "012033", None), (Role.BODY_ADMIN, "012033", None), (Role.PREFECTURE_STAFF, "010006", None),
    (Role.MINISTRY_OFFICER, None, "mic"), (Role.FINANCE_OFFICER, None, "mhlw"), (Role.SYSTEM_ADMIN, None, "cas"),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200, help="generated cases per operation")
    parser.add_argument("--demo", action="store_true", help="load the demo data first (slower, more to find)")
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file in a temporary folder")
    parser.add_argument("--random", action="store_true", help="a new random seed (default: derandomized)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pmo-fuzz-"))
    url = args.database_url or f"sqlite:///{root / 'fuzz.sqlite3'}"
    upgrade_database(url)
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(root / "instance"), "SECRET_KEY": "f" * 64,
                      "TESTING": True, "LOG_LEVEL": "WARNING"})
    from sqlalchemy import select

    from pmo.seeding import DemoContext, run_demo, run_seed

    bearers = []
    with app.app_context(), app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        if args.demo:
            run_demo(session, DemoContext(seed_dir=data_dir("seed"), password="fuzz-demo-password-2015",
                                          demo_date=dt.date.fromisoformat(app.config["DEMO_DATE"]),
                                          upload_dir=root / "instance" / "uploads"))
        for n, (role, body_code, ministry) in enumerate(ROLES):
            body_id = session.scalar(select(Body.id).where(Body.code == body_code)) if body_code else None
            ministry_id = session.scalar(select(Ministry.id).where(Ministry.code == ministry)) if ministry else None
            user = User(login_id=f"fuzz-{n}-{role.value.replace('_', '-')}", display_name=f"ファズ {n}",
                        email=f"fuzz{n}@example.jp", role=role, body_id=body_id, ministry_id=ministry_id,
                        password_hash=accounts.hash_password("fuzz-password-2015"), must_change_password=False)
            session.add(user)
            session.flush()
            _token, secret = accounts.create_api_token(session, accounts.actor_for(user), "fuzz")
            bearers.append({"Authorization": f"Bearer {secret}"})
        session.commit()

    started = time.perf_counter()
    try:
        sent = fuzz_api(app, bearers, args.cases, derandomize=not args.random)
        failed = None
    except AssertionError as exc:
        sent, failed = None, str(exc)
    elapsed = time.perf_counter() - started
    if failed:
        print(failed)
        print(f"FAILED after {elapsed:.0f} s")
        return 1
    assert sent is not None
    requests = sum(sent.values())
    print(f"api fuzz: {len(sent)} operations, {requests // len(bearers)} generated cases, "
          f"{requests} requests ({len(bearers)} roles), 0 failures, {elapsed:.0f} s "
          f"(up to {args.cases} cases per operation{', demo data' if args.demo else ''})")
    for label, count in sorted(sent.items()):
        print(f"  {label:<40} {count // len(bearers):6d} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
