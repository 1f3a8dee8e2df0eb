"""Fast bulk inserts for tens of thousands of rows (monthly close, imports, demo data).

SQLAlchemy's executemany spends most of its time building per-row parameters; here each
column's bind processor is looked up once and applied in a tight loop, then the driver runs one
executemany (SQLite) or a COPY (PostgreSQL). Same transaction as the session: all or nothing.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _converter(rows: Sequence[dict[str, Any]], column: str) -> Callable[[Any], Any] | None:
    """How to write a column for COPY, chosen once from its values' type (None: as it is)."""
    kinds = {type(row[column]) for row in rows if row[column] is not None}
    if not kinds or not any(issubclass(k, (enum.Enum, dict, list)) for k in kinds):
        return None
    return _plain


def _remembered(processor: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """Wrap a bind processor so each distinct value is converted once (dates, times and enums repeat)."""
    if processor is None:
        return None
    known: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        if value is None:
            return processor(value)
        # Equal is not enough: 12:00 JST equals 03:00 UTC but is stored as a different text.
        key = (value.__class__, value, getattr(value, "tzinfo", None))
        try:
            return known[key]
        except KeyError:
            result = known[key] = processor(value)
            return result
        except TypeError:  # unhashable: a JSON document
            return processor(value)

    return convert


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in the session's transaction."""
    if not rows:
        return 0
    session.flush()
    conn = session.connection()
    revisions = table.name == "plan_revisions"
    if revisions:  # the typed state columns and the chain, as the ORM flush events fill them
        from pmo.plans.models import chain_batch, with_revision_state

        rows = [with_revision_state(row) for row in rows]
        chain_batch(rows, conn.dialect.name)
    _insert(conn, table, rows)
    if revisions:
        from pmo.plans.models import link_revisions

        plan_ids = {row["plan_id"] for row in rows}
        # A few plans: relink them; many (a national import): the plans left with two open revisions.
        link_revisions(conn, plan_ids if len(plan_ids) <= _FEW_PLANS else None)
    return len(rows)


_FEW_PLANS = 2000


def _insert(conn: Any, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0].keys())
    dbapi = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        names = ", ".join(f'"{c}"' for c in columns)
        converters = [_converter(rows, c) for c in columns]
        plain = [c for c, f in zip(columns, converters) if f is None]
        if len(plain) == len(columns):
            make = (lambda row: [row[c] for c in columns])
        else:
            pairs = list(zip(columns, converters))
            make = (lambda row: [row[c] if f is None else f(row[c]) for c, f in pairs])
        with dbapi.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(make(row))
        return
    processors = [_remembered(table.c[c].type._cached_bind_processor(conn.dialect)) for c in columns]
    pairs = list(zip(columns, processors))
    values = [tuple(p(row[c]) if p else row[c] for c, p in pairs) for row in rows]
    sql = f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ({", ".join("?" for _ in columns)})'
    cursor = dbapi.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, values)
    finally:
        cursor.close()
