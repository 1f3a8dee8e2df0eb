"""A database of a test's own, beside the shared test database, for tests that need committed data
(live servers, backup and restore, concurrent writers, several app processes).

On SQLite it is a new file in the given folder; on PostgreSQL (PMO_TEST_DATABASE_URL) it is a fresh
database named after the test database plus a suffix, dropped and created again each time.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa


def own_database(folder: Path, suffix: str) -> str:
    """Return the URL of an empty database for ``suffix`` ("live", "ops", …)."""
    base = os.environ.get("PMO_TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{folder / f'{suffix}.sqlite3'}"
    return fresh_postgres_database(base, suffix)


def fresh_postgres_database(base: str, suffix: str) -> str:
    """Drop and create ``<database of base>_<suffix>`` on base's server; return its URL."""
    url = sa.make_url(base)
    name = f"{url.database}_{suffix}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
