from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.files.clamav import Clamd


@pytest.fixture(scope="module")
def clamd() -> Iterator[Clamd]:
    """A running clamd with the test signature database, for this module's tests."""
    daemon = Clamd()
    daemon.start()
    yield daemon
    daemon.close()


@pytest.fixture(autouse=True)
def _no_indexing_after_commit(app):
    app.config["SEARCH_INDEX_AFTER_COMMIT"] = False
