"""`pip install .` gives a working install: the wheel carries templates, static files, migrations and
seed data, and from another folder `pmo --help`, `pmo db upgrade` and `pmo seed` work."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, cwd=ROOT)
    return next(out.glob("pmo-*.whl"))


def test_wheel_carries_the_data_folders(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("pmo/_data/templates/base.html", "pmo/_data/static/css/pmo.css",
                     "pmo/_data/migrations/env.py", "pmo/_data/seed/orgs/bodies.csv",
                     "pmo/_data/seed/catalog/catalog.json"):
        assert required in names, required
    assert any(n.startswith("pmo/_data/migrations/versions/") and n.endswith(".py") for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_migrates_and_seeds_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    db = tmp_path / "installed.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(target), "PMO_INSTANCE_PATH": str(tmp_path / "instance"),
           "PMO_DATABASE_URL": f"sqlite:///{db}"}
    env.pop("PMO_TEST_DATABASE_URL", None)

    def pmo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pmo", *args], cwd=workdir, env=env, capture_output=True,
                              text=True, check=True)

    where = subprocess.run([sys.executable, "-c", "import pmo, pmo.paths; print(pmo.__file__); print(pmo.paths.data_dir('templates'))"],
                           cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(line.startswith(str(target)) for line in where), where
    assert "db" in pmo("--help").stdout
    pmo("db", "upgrade")
    pmo("seed")
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM bodies WHERE kind != 'union'")).scalar()
    engine.dispose()
    assert count == 1788
