"""The reliability matrix: run the fault, load, hostile-input and secrets tests and print what they measured.

    make reliability-report        # or: python -m bench.reliability [pytest args]

Each test records what it injected and what it measured (tests/conftest.py `report`);
this script runs them with a JUnit XML report and prints one row per case.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = [
    "tests/flows/test_train_faults.py",
    "tests/accord/registry/test_store_faults.py",
    "tests/flows/test_train_resume.py",
    "tests/accord/ensembling/test_ensemble.py",
    "tests/deployments/test_cli_secrets.py",
]


def main(argv: list[str]) -> int:
    """Run the suites, then print the matrix; return pytest's exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "report.xml"
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:logging", f"--junitxml={xml}", *SUITES, *argv],
            cwd=ROOT,
        )
        rows = []
        for case in ET.parse(xml).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            outcome = "FAILED" if failed else "skipped" if skipped else "held"
            name = case.get("name", "")
            injected = props.get("injected") or name.removeprefix("test_").replace("_", " ")
            measured = props.get("measured") or (
                "refused before deserialising or any storage call" if outcome == "held" else ""
            )
            rows.append(
                (
                    case.get("classname", "").rsplit(".", 1)[-1],
                    injected,
                    outcome,
                    measured,
                    float(case.get("time", 0)),
                )
            )
    print()
    print(f"{'suite':<16} {'outcome':<8} {'s':>6}  injected -> measured")
    print("-" * 110)
    for suite, injected, outcome, measured, seconds in rows:
        print(f"{suite:<16} {outcome:<8} {seconds:>6.1f}  {injected}\n{'':<33}-> {measured}")
    held = sum(r[2] == "held" for r in rows)
    print("-" * 110)
    print(f"{held}/{len(rows)} cases held")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
