"""Property-based API fuzzing with schemathesis: no 5xx, answers match the OpenAPI schema.

Bounded: 25 positive and 25 negative examples per operation, well under a minute in all. Runs
once on SQLite and once on PostgreSQL: every endpoint against each store backend.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from postgres_testing import BACKENDS
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_testing import AUTH

from service.app import create_app
from service.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_app(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
    trained_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
):
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_cluster").database()
    else:
        database_url = f"sqlite:///{folder / 'fuzz.sqlite3'}"
    return create_app(
        Settings(
            model_dir=trained_model_dir,
            database_url=database_url,
            api_keys=(AUTH["X-API-Key"],),
            api_key_file=folder / "api-key",
            reload_interval=0,
            log_level="WARNING",
        )
    )


@pytest.fixture(scope="module")
def fuzz_client(fuzz_app) -> Iterator[ASGIClient]:  # type: ignore[no-untyped-def]
    client = ASGIClient(fuzz_app)
    with client:
        # Something in the inbox, so that reads and reviews of id 1 find a request.
        client.post(
            "http://localhost/v1/requests", json={"text": "Bitte 2FA für das Portal"}, headers=AUTH
        )
        yield client


def test_api_never_fails_and_matches_its_schema(fuzz_app, fuzz_client) -> None:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    runs = [(op, mode) for op in operations for mode in GenerationMode]
    for operation, mode in runs:
        if operation.method.upper() == "POST" and operation.path == "/v1/model/reload":
            continue  # reloading the model 50 times only measures loading

        codes = seen[(operation.method.upper(), operation.path)]

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(session=fuzz_client, headers=AUTH, checks=CHECKS)
            codes.add(response.status_code)  # noqa: B023 (check runs in this iteration)

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to break without parameters
    print({f"{m} {p}": sorted(codes) for (m, p), codes in seen.items()})
    assert any(200 in codes or 201 in codes for codes in seen.values())
