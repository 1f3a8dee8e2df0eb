"""``pmo plans import|export|close-month``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from pmo.core.tabular import write_csv
from pmo.plans import imports
from pmo.plans.models import Plan
from tests.conftest import CITY_A, CITY_B


def test_import_rejects_a_file_with_errors_and_exits_non_zero(app, tmp_path, db_session):
    path = tmp_path / "plans.csv"
    path.write_bytes(write_csv(imports.HEADERS, [
        [CITY_A, "", "A-6", "2015-04-01", "2015-12-25", "", "", "", "", ""],
        ["000000", "", "A-6", "", "", "", "", "", "", ""],
        [CITY_B, "", "A-6", "2015-04-01", "2015-03-01", "", "", "", "", ""],
    ]))
    result = app.test_cli_runner().invoke(args=["plans", "import", str(path)])
    assert result.exit_code == 1
    assert "2件の誤りがあるため、何も取り込みませんでした。" in result.output
    assert "3\t団体コード\t000000" in result.output and "4\t計画終了日" in result.output
    assert db_session.scalar(select(func.count()).select_from(Plan)) == 0


def test_import_then_export(app, tmp_path, db_session):
    path = tmp_path / "plans.csv"
    path.write_bytes(write_csv(imports.HEADERS, [[CITY_A, "", "A-6", "2015-04-01", "2015-12-25", "", "", "", "", ""]],
                               encoding="cp932"))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["plans", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "新規1件" in result.output
    assert db_session.scalar(select(Plan)).planned_end == dt.date(2015, 12, 25)
    again = runner.invoke(args=["plans", "import", str(path)])
    assert "同一ファイルは取込済みです" in again.output and "新規0件、更新0件、変更なし1件" in again.output
    out = tmp_path / "otaru.csv"
    assert runner.invoke(args=["plans", "export", "--body", CITY_A, str(out)]).exit_code == 0
    lines = out.read_bytes().decode("utf-8-sig").splitlines()
    assert lines[0] == ",".join(imports.HEADERS) and lines[1].startswith(f"{CITY_A},小樽市,A-6,2015-04-01,2015-12-25")
    assert len(lines) == 30
    assert runner.invoke(args=["plans", "export", str(out)]).exit_code == 2
