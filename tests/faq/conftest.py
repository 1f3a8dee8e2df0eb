"""These tests do not search: skip the in-process indexing after each commit (tests/search covers it)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_indexing_after_commit(app):
    app.config["SEARCH_INDEX_AFTER_COMMIT"] = False
