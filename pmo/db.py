"""Database wiring: one declarative Base, the engine, and one session per request.

SQLite is the embedded default and PostgreSQL the production database; both behave the same
to the code above this module. On SQLite every connection gets WAL, a busy timeout and foreign
keys, and write transactions begin with ``BEGIN IMMEDIATE`` so two writers queue on the busy
timeout instead of failing with "database is locked" when a read lock is upgraded.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        enum.Enum: sa.Enum(enum.Enum, native_enum=False, length=40, values_callable=lambda e: [m.value for m in e]),
    }

    def __repr__(self) -> str:
        label = getattr(self, "code", None) or getattr(self, "name", None) or getattr(self, "title", None)
        return f"<{type(self).__name__} {getattr(self, 'id', '?')}{f' {label}' if label else ''}>"


# True while the current unit of work intends to write (a POST, a CLI command): on SQLite its
# transaction then starts with BEGIN IMMEDIATE.
write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("pmo_write_intent", default=True)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each backend needs."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite (SQLAlchemy's documented workaround), so
        # that SAVEPOINT works and we choose BEGIN vs BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal" and ":memory:" not in str(engine.url) and engine.url.database:
            raise RuntimeError(f"SQLite refused WAL mode (got {mode})")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = write_intent.get()
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        conn.info["pmo_immediate"] = immediate


def _write_after_reading(session: Session, _context: Any, _instances: Any) -> None:
    """On SQLite, let a read transaction (a GET) that now writes queue like any writer.

    A GET begins with a plain BEGIN; a write after its reads (the session's last_seen, a download's
    read mark, an audit entry) would upgrade the read lock, and SQLite refuses that at once with
    "database is locked" when another process committed since the reads began (no busy wait can
    help a stale snapshot). So before the first flush the read-only transaction is ended and a
    ``BEGIN IMMEDIATE`` one started, which waits on the busy timeout. Only for sessions on the
    engine itself: tests bound to an outer transaction keep it.
    """
    if not (session.new or session.dirty or session.deleted) or not isinstance(session.bind, Engine):
        return
    if session.in_nested_transaction():  # a COMMIT would end its savepoint too
        return
    conn = session.connection()
    if conn.dialect.name != "sqlite" or conn.info.get("pmo_immediate", True):
        return
    conn.exec_driver_sql("COMMIT")  # nothing was written in it: only reads end here
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    conn.info["pmo_immediate"] = True


def make_session_factory(bind: Engine | Connection) -> sessionmaker[Session]:
    """Return the session factory; a Connection bind joins its transaction through savepoints (tests)."""
    if isinstance(bind, Connection):
        return sessionmaker(bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint")
    factory = sessionmaker(bind=bind, expire_on_commit=False)
    if bind.dialect.name == "sqlite":
        event.listen(factory, "before_flush", _write_after_reading)
    return factory


class Database:
    """The app's engine and session factory, kept in ``app.extensions['pmo_db']``."""

    def __init__(self, url: str, bind: Connection | None = None) -> None:
        self.url = url
        self.engine = bind.engine if bind is not None else create_db_engine(url)
        self.session_factory = make_session_factory(bind if bind is not None else self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def writes_beside(self) -> bool:
        """Whether a second session may commit while another holds a write transaction: PostgreSQL
        on its own engine (SQLite has one writer; a test bound to one connection has one transaction)."""
        return not self.is_sqlite and not isinstance(self.session_factory.kw.get("bind"), Connection)

    @contextlib.contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """A session for work outside a request (CLI, jobs); the caller commits."""
        token = write_intent.set(write)
        session = self.session_factory()
        try:
            yield session
        finally:
            session.close()
            write_intent.reset(token)


def get_session() -> Session:
    """Return the request's session, creating it on first use (flaskr's get_db pattern)."""
    from flask import current_app, g

    if "pmo_session" not in g:
        g.pmo_session = current_app.extensions["pmo_db"].session_factory()
    return g.pmo_session


def init_app(app: Any, bind: Connection | None = None) -> Database:
    """Attach the database to the app and close the request session at teardown."""
    from flask import g, request

    database = Database(app.config["DATABASE_URL"], bind=bind)
    app.extensions["pmo_db"] = database

    @app.before_request
    def _set_write_intent() -> None:
        g.pmo_write_token = write_intent.set(request.method not in ("GET", "HEAD", "OPTIONS"))

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("pmo_session", None)
        if session is not None:
            session.rollback()
            session.close()
        token = g.pop("pmo_write_token", None)
        if token is not None:
            write_intent.reset(token)

    return database
