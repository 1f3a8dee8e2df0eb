"""REL-06: two plan imports confirmed at once for the same body are queued, never interleaved (the
second reads what the first wrote: no lost update); an edit made on a sheet read before an import
is refused as a conflict (REL-02's version check). On a database of its own, with two sessions in
two threads, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time

import pytest
import sqlalchemy as sa

from pmo import create_app
from pmo.accounts.models import Role, User
from pmo.accounts.service import actor_for, hash_password
from pmo.cli import upgrade_database
from pmo.core import clock
from pmo.core.tabular import write_csv
from pmo.paths import data_dir
from pmo.plans import imports, service, views
from pmo.plans.models import ImportJob, ImportStatus, Plan, PlanRevision
from tests.conftest import CITY_A, SECRET, TEST_PASSWORD, PortalClient
from tests.databases import own_database
from tests.plans.conftest import row
from tests.plans.test_revision_chain import assert_chain

CODES = ["A-6", "C-4", "C-5", "E-4"]


@pytest.fixture
def portal(tmp_path):
    url = own_database(tmp_path, "rel06")
    upgrade_database(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": SECRET,
                      "INSTANCE_PATH": str(tmp_path / "instance"), "SEARCH_INDEX_AFTER_COMMIT": False})
    app.test_client_class = PortalClient
    from pmo.seeding import run_seed

    with app.extensions["pmo_db"].session() as session:
        run_seed(session, data_dir("seed"))
        body = session.scalar(sa.text("SELECT id FROM bodies WHERE code = :c"), {"c": CITY_A})
        for n in range(2):
            session.add(User(login_id=f"staff{n}.rel06", display_name="職員", email=f"s{n}@rel06.example.jp",
                             body_id=body, role=Role.BODY_STAFF, password_hash=hash_password(TEST_PASSWORD),
                             must_change_password=False))
        session.commit()
    yield app
    app.extensions["pmo_db"].engine.dispose()


def _login(app, login_id: str) -> PortalClient:
    client = app.test_client()
    assert client.post_form("/login", {"login_id": login_id, "password": TEST_PASSWORD},
                            token_from="/login").status_code == 302
    return client


def _preview(client: PortalClient, batch: str, planned_end: str, comment: str) -> None:
    data = write_csv(imports.HEADERS, [[CITY_A, "", code, "2015-04-01", planned_end, "", "", "", "", comment]
                                       for code in CODES])
    token = client.csrf_token("/plans/import")
    response = client.post("/plans/import", data={"csrf_token": token, "batch_id": batch,
                                                   "file": (io.BytesIO(data), f"{batch}.csv")},
                           content_type="multipart/form-data")
    assert response.headers["Location"].endswith(f"/plans/import/{batch}")


def _confirm(client: PortalClient, batch: str) -> int:
    return client.post_form(f"/plans/import/{batch}/commit", token_from=f"/plans/import/{batch}").status_code


def _plans(app) -> dict[str, tuple[int, dt.date | None, str | None]]:
    with app.extensions["pmo_db"].session(write=False) as session:
        from pmo.catalog.models import Subtask

        rows = session.execute(sa.select(Subtask.code, Plan.version, Plan.planned_end, Plan.comment)
                               .join(Subtask, Subtask.id == Plan.subtask_id)).all()
    return {code: (version, end, comment) for code, version, end, comment in rows}


def test_two_imports_at_once_are_queued_and_lose_nothing(portal, monkeypatch):
    """REL-06: import A is half applied (its transaction open) when import B is confirmed; B waits
    until A commits, then applies on top of A: every row ends at version 3 with B's values, and B's
    revisions start from A's values."""
    clock.freeze(None)
    first, second = _login(portal, "staff0.rel06"), _login(portal, "staff1.rel06")
    _preview(first, "base", "2015-12-31", "初回")
    assert _confirm(first, "base") == 302
    assert {v[0] for v in _plans(portal).values()} == {1}
    _preview(first, "importa", "2016-01-31", "取込A")
    _preview(second, "importb", "2016-02-29", "取込B")

    reached, release = threading.Event(), threading.Event()

    def hold_a(job):  # the view's progress reporter: A stops after writing its rows, before commit
        if job.batch_id != "importa":
            return None

        def report(done: int, total: int) -> None:
            reached.set()
            assert release.wait(60)

        return report

    monkeypatch.setattr(views, "_apply_progress", hold_a)
    results: dict[str, int] = {}
    threads = {
        "a": threading.Thread(target=lambda: results.__setitem__("a", _confirm(first, "importa"))),
        "b": threading.Thread(target=lambda: results.__setitem__("b", _confirm(second, "importb"))),
    }
    threads["a"].start()
    assert reached.wait(60)
    threads["b"].start()
    time.sleep(1.5)
    assert "b" not in results  # B is queued behind A's transaction
    release.set()
    for thread in threads.values():
        thread.join(120)
    assert results == {"a": 302, "b": 302}
    plans = _plans(portal)
    assert {code: (v, end, comment) for code, (v, end, comment) in plans.items()} == {
        code: (3, dt.date(2016, 2, 29), "取込B") for code in CODES}
    with portal.extensions["pmo_db"].session(write=False) as session:
        jobs = {j.batch_id: j for j in session.scalars(sa.select(ImportJob))}
        assert jobs["importa"].status is ImportStatus.DONE and jobs["importb"].status is ImportStatus.DONE
        assert jobs["importb"].counts["applied"]["updated"] == len(CODES)
        befores = session.scalars(sa.select(PlanRevision.before).where(PlanRevision.batch_id == "importb")).all()
        assert assert_chain(session) == len(CODES)  # B's revisions close A's: one open revision per plan
    assert len(befores) == len(CODES) and all(b["comment"] == "取込A" for b in befores)


def test_an_edit_of_a_sheet_read_before_an_import_is_a_conflict(portal):
    """REL-06 / REL-02: the import bumps each row's version, so a save from a sheet read before it is
    refused with both values and overwrites nothing."""
    clock.freeze(None)
    client = _login(portal, "staff0.rel06")
    _preview(client, "base", "2015-12-31", "初回")
    assert _confirm(client, "base") == 302
    with portal.extensions["pmo_db"].session() as session:
        editor = actor_for(session.scalar(sa.select(User).where(User.login_id == "staff1.rel06")))
        seen = {r.subtask.code: r for r in service.load_sheet(session, editor, CITY_A).rows}
        session.commit()
    _preview(client, "later", "2016-03-31", "後の取込")
    assert _confirm(client, "later") == 302
    with portal.extensions["pmo_db"].session() as session:
        with pytest.raises(service.PlanConflict) as caught:
            service.save_sheet(session, editor, CITY_A, [row("C-4", seen["C-4"].version, planned_end="2016-01-15")])
        session.rollback()
    assert caught.value.rows[0].theirs.planned_end.value == dt.date(2016, 3, 31)
    assert _plans(portal)["C-4"][1:] == (dt.date(2016, 3, 31), "後の取込")
