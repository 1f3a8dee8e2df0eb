"""CFG-05 in the suite: the minimum pins hold here, and an unreachable advisory source is reported,
never mistaken for a clean audit (the full audit and the SBOM run in `make audit` / .ci/run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "supply_chain.py"


def load_script():
    spec = importlib.util.spec_from_file_location("supply_chain", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_minimum_pins_hold_and_are_declared(capsys):
    module = load_script()
    assert module.check_pins(online=False) == []
    out = capsys.readouterr().out
    for name in ("flask", "werkzeug", "defusedxml", "openpyxl"):
        assert name in out


def test_an_unreachable_advisory_source_is_detected(monkeypatch):
    module = load_script()
    monkeypatch.setattr(module, "ADVISORY_PROBE", "http://127.0.0.1:9/")
    assert module.advisory_data_reachable() is False


def test_a_pin_below_its_minimum_fails(monkeypatch):
    module = load_script()
    monkeypatch.setitem(module.MINIMUMS, "werkzeug", ("99.0", "test"))
    problems = module.check_pins(online=False)
    assert any("werkzeug" in p and "99.0" in p for p in problems)
