"""Property-based fuzzing of the API from its own /openapi.json: no generated request, valid
or not, may get a 5xx."""

from __future__ import annotations

import pytest

from tests.fixtures.serving import API_KEY

pytestmark = pytest.mark.integration

# Routes that take a body get most of the budget; the simple GETs exhaust their inputs quickly.
EXAMPLES_WITH_BODY = 80
EXAMPLES_OTHERS = 10
MIN_CASES = 500


def test_schemathesis_finds_no_server_error(shared_api) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(f"{shared_api.url}/openapi.json")
    calls: list[tuple[str, int]] = []
    server_errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/predict",
        "/invocations",
        "/feedback",
        "/v2/models/{name}/infer",
    }
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_WITH_BODY if operation.body else EXAMPLES_OTHERS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                response = case.call(
                    base_url=shared_api.url, headers={"X-API-Key": API_KEY}, timeout=30
                )
                calls.append((case.operation.label, response.status_code))
                if response.status_code >= 500:
                    server_errors.append(
                        f"{case.operation.label} {case.body!r:.300} -> "
                        f"{response.status_code} {response.text[:300]}"
                    )

            try:
                run()
            except Unsatisfiable:
                # nothing can be made invalid (no parameters, no body): positive cases only
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert len(calls) >= MIN_CASES, f"only {len(calls)} generated cases"
    assert not server_errors, "\n".join(server_errors[:5])
    # the fuzzer also reached the success paths, not only the 4xx ones
    assert any(label == "POST /predict" and status == 200 for label, status in calls)
