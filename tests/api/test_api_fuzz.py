"""Property-based fuzzing of the OpenAPI schema (schemathesis): no 5xx, responses match it.

Bounded: a fixed number of generated requests per operation, derandomised, on a dedicated
app (fuzzed writes must not touch the other tests' indexes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_helpers import make_settings
from conftest import running_app
from hypothesis import HealthCheck, settings

from braid.api.main import create_app
from braid.engine.config import Settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import ASGIClient, get_client  # noqa: E402

# BRAID_FUZZ_EXAMPLES raises it for a longer, one-off run (CI keeps 30).
MAX_EXAMPLES = int(os.environ.get("BRAID_FUZZ_EXAMPLES", "30"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Limits small enough that generated requests hit them, and the schema states them.
LIMITS = {"max_batch_documents": 5, "max_embed_texts": 8, "max_document_chars": 2000}


def _schema() -> dict[str, object]:
    # The schema depends only on the settings' limits: an app that never starts will do.
    app = create_app(make_settings(Path("/nonexistent-braid-fuzz"), **LIMITS), preflight=False)
    return app.openapi()


schema = schemathesis.openapi.from_dict(_schema())


@pytest.fixture(scope="module")
def fuzz_client(
    settings_for: Callable[..., Settings], sample_docs: list[dict[str, object]]
) -> Iterator[ASGIClient]:
    """Schemathesis's in-process client over an app whose lifespan this fixture owns.

    The client is not entered: entering would let schemathesis start (and, after each
    test item, stop) the lifespan, reloading the models every time.
    """
    with running_app(settings_for("fuzz", **LIMITS)) as started:
        for start in range(0, len(sample_docs), 5):
            batch = sample_docs[start : start + 5]
            response = started.post("/v1/documents?wait=true", json={"documents": batch})
            assert response.status_code == 200, response.text
        yield get_client(started.app)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_openapi_fuzz(case: schemathesis.Case, fuzz_client: ASGIClient) -> None:
    if case.query and case.query.get("wait") in (True, "true"):
        case.query["timeout_s"] = 5  # a generated wait must not hold the test for minutes
    response = case.call(session=fuzz_client, app=fuzz_client.app)
    case.validate_response(response, checks=CHECKS)
