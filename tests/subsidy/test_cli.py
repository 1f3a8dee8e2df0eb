"""``pmo subsidy …`` commands: output, JSON, and non-zero exits with Japanese errors."""

from __future__ import annotations

import json

from pmo.subsidy import service
from tests.conftest import CITY_A


def _run(app, *args):
    return app.test_cli_runner().invoke(args=["subsidy", *args])


def test_base_json(app, db_session):
    result = _run(app, "base", "--body", CITY_A, "--fiscal-year", "2014", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["population"] == 111_299 and data["illustrative"] is True
    bases = service.body_bases(db_session, None, service.find_body(db_session, CITY_A), 2014)
    assert data["systems"]["国民健康保険"]["base"] == bases.get(service.System.NATIONAL_HEALTH_INSURANCE).effective


def test_base_unknown_body_exits_non_zero(app):
    result = _run(app, "base", "--body", "999999", "--fiscal-year", "2014")
    assert result.exit_code == 1 and "団体コード「999999」の団体はありません" in result.output


def test_grant_json(app, tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"body": CITY_A, "fiscal_year": 2014, "costs": {"国民年金": 1_234_567}}), encoding="utf-8")
    result = _run(app, "grant", "--input", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["categories"]["国民年金・特別児童扶養手当分"]["grant"] == 1_234_000


def test_grant_bad_input_exits_non_zero_in_japanese(app, tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"body": CITY_A, "fiscal_year": 2030, "costs": {"国民年金": "100"}}), encoding="utf-8")
    result = _run(app, "grant", "--input", str(path), "--json")
    assert result.exit_code == 1
    assert "2030年度の年度事業はありません" in result.output and "costs.国民年金" in result.output
    path.write_text("{not json", encoding="utf-8")
    assert _run(app, "grant", "--input", str(path)).exit_code == 1


def test_load_base_table_refuses_a_falling_table_and_keeps_the_old(app, db_session, tmp_path):
    before = service.tables_in_force(db_session)[2014].id
    path = tmp_path / "t.csv"
    path.write_text("fiscal_year,body_kind,system,population,amount_thousand_yen\n"
                    "2014,municipality,国民健康保険,0,3000\n2014,municipality,国民健康保険,10000,2000\n", encoding="utf-8")
    result = _run(app, "load-base-table", str(path))
    assert result.exit_code == 1
    assert "3行目" in result.output and "現在の基準額表はそのまま" in result.output
    db_session.expire_all()
    assert service.tables_in_force(db_session)[2014].id == before


def test_load_base_table_loads_a_good_table(app, db_session, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("fiscal_year,body_kind,system,population,amount_thousand_yen\n"
                    "2016,prefecture,健康管理,0,1000\n2016,prefecture,健康管理,2000000,9000\n", encoding="utf-8")
    result = _run(app, "load-base-table", str(path))
    assert result.exit_code == 0, result.output
    assert "2016年度の基準額表を登録しました（2行）" in result.output
