"""Worker of the CLI import tests: run the real ``pmo plans import FILE`` in this process, with one
step changed so the test can watch it.

Usage: python interrupted_cli_import_worker.py half FILE
       python interrupted_cli_import_worker.py slow FILE LEASE_SECONDS SLEEP_SECONDS

The database, instance folder and secret come from PMO_* variables, as for the operator.
``half``: the apply reports its progress and, once half the rows are written (inside the still-open
transaction), prints ``HALF <done> <total>`` and waits to be killed (SIGKILL).
``slow``: the lease is LEASE_SECONDS and the apply's first bulk insert first sleeps SLEEP_SECONDS
(printing ``SLOW``), as a slow disk or a huge file would; the import then finishes.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from pmo.cli import main as pmo_main
from pmo.plans import imports


def main() -> None:
    mode, path = sys.argv[1:3]
    if mode == "half":
        original = imports.commit_job

        def report(done: int, total: int) -> None:
            if done * 2 >= total:
                print(f"HALF {done} {total}", flush=True)
                time.sleep(600)  # the test kills this process here

        def commit_job(session, actor, job, storage, progress=None):  # type: ignore[no-untyped-def]
            return original(session, actor, job, storage, report)

        imports.commit_job = commit_job  # type: ignore[assignment]
    elif mode == "slow":
        lease, pause = float(sys.argv[3]), float(sys.argv[4])
        imports.STALE_AFTER = dt.timedelta(seconds=lease)
        original_insert = imports.bulk_insert
        slept = []

        def bulk_insert(*args, **kwargs):  # type: ignore[no-untyped-def]
            if not slept:
                slept.append(True)
                print("SLOW", flush=True)
                time.sleep(pause)
            return original_insert(*args, **kwargs)

        imports.bulk_insert = bulk_insert  # type: ignore[assignment]
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("STARTED", flush=True)
    pmo_main(["plans", "import", path])


if __name__ == "__main__":
    main()
