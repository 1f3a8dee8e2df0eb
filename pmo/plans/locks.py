"""One plan import applies at a time (SECURITY.md REL-06).

A second confirmation waits until the first has committed (it is queued, never interleaved) and then
reads the rows as the first left them, so neither overwrites the other's changes unseen. SQLite gets
this from ``BEGIN IMMEDIATE`` (one writer); PostgreSQL from a transaction-level advisory lock taken
before the import reads the current rows.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# An arbitrary constant naming "plan imports" among advisory locks ('PLAN' in ASCII).
PLAN_IMPORT_LOCK = 0x504C414E


def wait_for_other_imports(session: Session) -> None:
    """Call first in the transaction that applies an import; held until it commits or rolls back."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLAN_IMPORT_LOCK})
