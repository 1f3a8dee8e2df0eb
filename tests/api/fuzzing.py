"""Drive schemathesis over every operation of /api/v1/openapi.json (shared by the short form in
tests/api/test_fuzz.py and the long form in bench/api_fuzz.py).

Hypothesis generates the cases from the document itself; each case is sent once per Bearer token
given, and ``call_and_validate`` runs schemathesis' checks: no server error, a documented status
code, the documented content type and headers, a body that matches the documented schema.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings


def fuzz_api(app: Any, bearers: Sequence[dict[str, str]], cases_per_operation: int,
             derandomize: bool = True) -> Counter[str]:
    """Run every operation; return the number of requests sent per operation (raise on a failure)."""
    # A request that matches the schema may still break a business rule (an unknown sub-task, a date
    # in a wrong order): that is a documented 422, or 409 for a stale version, never a 400 or a 500.
    config = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {
        "expected-statuses": ["2XX", "401", "403", "404", "409", "422", "429"]}}})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    sent: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = operation.label

        @settings(max_examples=cases_per_operation, deadline=None, derandomize=derandomize, database=None,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            # run() is called right below, inside this iteration: the loop variables are current.
            for headers in bearers:
                case.call_and_validate(headers=headers)
                sent[label] += 1  # noqa: B023

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected: every operation is tried before failing
            failures.append(f"{operation.label}: {exc}")
    if failures:
        raise AssertionError("\n\n".join(failures))
    return sent
