"""REL-05's worker: confirm a previewed plan import through the real view in this process, and stop
dead at half-way so the test can SIGKILL it mid-transaction.

Usage: python interrupted_import_worker.py DATABASE_URL INSTANCE_PATH COOKIE_NAME COOKIE_VALUE BATCH_ID

The view ``plans.job_commit`` runs unchanged; only its progress reporter is replaced by one that
prints ``HALF <done> <total>`` once half the rows are written (inside the still-open transaction)
and then waits to be killed.
"""

from __future__ import annotations

import sys
import time

from pmo import create_app
from pmo.plans import views


def main() -> None:
    url, instance, cookie_name, cookie_value, batch_id = sys.argv[1:6]

    def blocking_progress(_job):  # type: ignore[no-untyped-def]
        def report(done: int, total: int) -> None:
            if done * 2 >= total:
                print(f"HALF {done} {total}", flush=True)
                time.sleep(600)  # the test kills this process here

        return report

    views._apply_progress = blocking_progress  # type: ignore[assignment]
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": instance, "SECRET_KEY": "t" * 64,
                      "WTF_CSRF_ENABLED": False, "SEARCH_INDEX_AFTER_COMMIT": False})
    client = app.test_client()
    client.set_cookie(cookie_name, cookie_value, domain="localhost", secure=True)
    print("STARTED", flush=True)
    response = client.post(f"/plans/import/{batch_id}/commit", base_url="https://localhost",
                           headers={"Referer": "https://localhost/"})
    print(f"FINISHED {response.status_code} {response.headers.get('Location')}", flush=True)


if __name__ == "__main__":
    main()
