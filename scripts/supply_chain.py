"""CFG-05: check the minimum pins, write a CycloneDX SBOM, and audit the dependencies for known
vulnerabilities, in the Python environment that runs this script (CI: the project's .venv).

    .venv/bin/python scripts/supply_chain.py [--out test-artifacts/supply-chain]

Exit status: 0 when every check that could run passed; 1 on a pin below its minimum, a known
vulnerability not listed in .ci/audit-ignore.txt, or a failed SBOM. When the advisory data cannot
be reached (a machine without internet), the audit is reported as NOT RUN in capitals and, unless
PMO_AUDIT_REQUIRED=1, does not fail the run: the other checks still do.

Policy (docs/DEPLOYMENT.md): every known vulnerability fails, whatever its severity (PyPI's
advisory feed carries none); an exception needs a line in .ci/audit-ignore.txt with the advisory
id, the reason and a review date.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from importlib import metadata
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
ADVISORY_PROBE = os.environ.get("PMO_ADVISORY_URL", "https://pypi.org/pypi/pip/json")
# SECURITY.md CFG-05: the minimums, each with why.
MINIMUMS = {
    "flask": ("3.1.1", "3.1.1 fixed how SECRET_KEY_FALLBACKS are used"),
    "werkzeug": ("3.1.6", "SECURITY.md CFG-05 minimum"),
    "defusedxml": ("0.7", "OOXML is parsed without entity expansion"),
    "openpyxl": ("3.1.5", "the current release (checked against PyPI when reachable)"),
}


def check_pins(online: bool) -> list[str]:
    problems = []
    for name, (minimum, why) in MINIMUMS.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed ({why})")
            continue
        ok = Version(installed) >= Version(minimum)
        print(f"  {name:<11} {installed:<10} minimum {minimum:<7} {'ok' if ok else 'TOO OLD'}  ({why})")
        if not ok:
            problems.append(f"{name} {installed} < {minimum}")
    if online:
        latest = _latest("openpyxl")
        installed = metadata.version("openpyxl")
        if latest and Version(installed) < Version(latest):
            problems.append(f"openpyxl {installed} is not the current release {latest}")
        print(f"  openpyxl current release on PyPI: {latest or 'unknown'}")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8").lower()
    for name, (minimum, _why) in MINIMUMS.items():
        if f'"{name}>={minimum}' not in pyproject and not (name == "defusedxml" and '"defusedxml>=' in pyproject):
            problems.append(f"pyproject.toml does not pin {name}>={minimum}")
    return problems


def _latest(name: str) -> str | None:
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=15) as response:
            return json.load(response)["info"]["version"]
    except (OSError, ValueError, KeyError):
        return None


def advisory_data_reachable() -> bool:
    try:
        with urllib.request.urlopen(ADVISORY_PROBE, timeout=10) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def write_sbom(out: Path) -> list[str]:
    target = out / "sbom.cdx.json"
    result = subprocess.run(
        [sys.executable, "-m", "cyclonedx_py", "environment", "--of", "JSON", "--output-reproducible",
         "--pyproject", str(ROOT / "pyproject.toml"), "-o", str(target), sys.executable],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0 or not target.exists():
        return [f"SBOM failed: {result.stderr.strip()[-500:]}"]
    components = json.loads(target.read_text(encoding="utf-8")).get("components", [])
    print(f"  SBOM (CycloneDX JSON): {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}, "
          f"{len(components)} components")
    return [] if components else ["SBOM lists no components"]


def ignored_ids() -> list[str]:
    path = ROOT / ".ci" / "audit-ignore.txt"
    if not path.exists():
        return []
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line.split()[0])
    return ids


def audit(out: Path) -> list[str]:
    report = out / "pip-audit.json"
    command = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "-s", "pypi", "--skip-editable",
               "-f", "json", "-o", str(report)]
    for vuln_id in ignored_ids():
        command += ["--ignore-vuln", vuln_id]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if not report.exists():
        return [f"pip-audit did not run: {result.stderr.strip()[-500:]}"]
    data = json.loads(report.read_text(encoding="utf-8"))
    found = [(d["name"], d["version"], v["id"], ", ".join(v.get("fix_versions") or []) or "no fix yet")
             for d in data.get("dependencies", []) for v in d.get("vulns", [])]
    print(f"  pip-audit: {len(data.get('dependencies', []))} packages checked against PyPI's advisories, "
          f"{len(found)} known vulnerabilities, {len(ignored_ids())} ignored by .ci/audit-ignore.txt")
    for name, version, vuln_id, fixes in found:
        print(f"    {name} {version}: {vuln_id} (fixed in {fixes})")
    if result.returncode not in (0, 1):
        return [f"pip-audit failed: {result.stderr.strip()[-500:]}"]
    return [f"{name} {version} has {vuln_id}" for name, version, vuln_id, _ in found]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "test-artifacts" / "supply-chain"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    online = advisory_data_reachable()
    print("== supply chain (CFG-05) ==")
    print("minimum pins:")
    problems += check_pins(online)
    print("SBOM:")
    problems += write_sbom(out)
    print("dependency audit:")
    if online:
        problems += audit(out)
    else:
        print(f"  DEPENDENCY AUDIT NOT RUN: the advisory data ({ADVISORY_PROBE}) cannot be reached from this "
              "machine (no internet?). Run scripts/supply_chain.py where it can be reached.")
        (out / "pip-audit.NOT-RUN.txt").write_text(f"advisory data unreachable: {ADVISORY_PROBE}\n", encoding="utf-8")
        if os.environ.get("PMO_AUDIT_REQUIRED") == "1":
            problems.append("the dependency audit is required (PMO_AUDIT_REQUIRED=1) but could not run")
    for problem in problems:
        print(f"FAIL: {problem}")
    print("supply chain: " + ("FAILED" if problems else "ok" if online else "ok (audit NOT RUN)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
