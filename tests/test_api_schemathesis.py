"""Property-based tests of the whole API from its own /openapi.json (schemathesis): whatever a client
sends, the server answers with a documented status and body, never a 5xx (properties 12-14)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pydantic_ai.models
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.apikeys import create_api_key
from core.store.pool import create_pool
from tests.api_helpers import bearer, fake_model_settings, threaded_server
from tests.fakes.openai_server import FakeOpenAI

EXAMPLES_PER_OPERATION = 12
CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def api(pg_uri: str, fake_openai: FakeOpenAI) -> Iterator[tuple[str, str]]:
    with threaded_server(pg_uri, fake_model_settings(fake_openai.base_url)) as served:
        yield served


@pytest.fixture(scope="module")
def admin_key(pg_uri: str) -> str:
    """An admin key, so that /v1/admin's operations are tried past the 403 an ordinary key gets."""

    async def make() -> str:
        pool = await create_pool(pg_uri, max_size=1)
        try:
            return (await create_api_key(pool, workspace_id="ops", name="schemathesis", admin=True))[1]
        finally:
            await pool.close()

    return asyncio.run(make())


@pytest.mark.timeout(120)
def test_p14_no_generated_request_gets_a_server_error(
    api: tuple[str, str], admin_key: str, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    url, key = api
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            admin = case.operation.path.startswith("/v1/admin")
            case.call_and_validate(base_url=url, headers=bearer(admin_key if admin else key), checks=CHECKS, timeout=30)

        try:
            given(case=operation.as_strategy())(run)()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 22
    assert not failures, "\n\n".join(failures)
