"""The PostgreSQL search backend's own failure modes (collected on the PostgreSQL test run only)."""
import pytest
import sqlalchemy as sa

from pmo.search.engine import IndexBusy, SearchQuery
from tests.search.test_engine import CORPUS, PUBLIC, Backends, assert_degraded, pg_engine, search  # noqa: F401


@pytest.fixture
def pg_backends(tmp_path, pg_engine):
    """The PostgreSQL backend only (its table can be damaged, its rebuild lock is an advisory lock)."""
    made = Backends("postgresql", tmp_path, pg_engine)
    yield made
    made.cleanup()


@pytest.mark.parametrize("damage", ["DROP COLUMN grams", "RENAME COLUMN body_norm TO damaged"])
def test_damaged_search_table_degrades(pg_backends, damage):
    """The PostgreSQL counterpart of a garbage segment."""
    backends = pg_backends
    backend = backends.new(CORPUS)
    with backends.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {backend.table} {damage}"))
    for instance in (backend, backends.reopen(backend)):
        assert_degraded(instance.search(SearchQuery("地方税", PUBLIC)))
        assert instance.status()["state"] == "broken"
    backend.rebuild(CORPUS)
    assert search(backend, "地方税").total == 1


def test_a_second_rebuild_at_the_same_time_is_refused(pg_backends):
    """Whoosh's rebuild lock is a file lock, covered by the CLI tests."""
    backends = pg_backends
    backend = backends.new(CORPUS)
    with backends.engine.connect() as conn, conn.begin():
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:t))"),
                     {"k": 0x5EA4C4, "t": backend.table})
        with pytest.raises(IndexBusy):
            backend.rebuild(CORPUS)
    assert search(backend, "地方税").total == 1
