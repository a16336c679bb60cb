"""The OpenAPI document is true: every route is in it, and schemathesis checks the running
server (on 127.0.0.1, over the session's dataset) against it, operation by operation.

Schemathesis is synchronous (requests), so the server runs in a thread with its own
event loop, pool and ``App`` — the same code ``envmon run`` starts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from envmon.api.app import ApiServer, build_app
from envmon.api.openapi import spec
from envmon.app import open_app

from .conftest import ADMIN, AIR, READ, WATER_TREND, Api, api_settings, settings_for

EXAMPLES = 6  # per operation: bounded; the dataset is small and the machine shared


def test_every_route_is_documented_and_every_path_routed(api: Api) -> None:
    doc = spec()
    routed = {
        (r.method.lower(), r.resource.canonical)
        for r in build_app(api.app, api.server.settings).router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routed == documented


async def test_served_document_is_the_spec(api: Api) -> None:
    status, body, resp = await api.get("/api/v1/openapi.json", token=None)
    assert status == 200 and resp.headers["Content-Type"].startswith("application/json")
    assert body == spec()


class ThreadedServer:
    """The API in a thread of its own (its own loop, pool and App)."""

    def __init__(self, db_url: str, tmp: Path) -> None:
        self.db_url, self.tmp = db_url, tmp
        self.url = ""
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="api-under-test", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # surfaced in __enter__ / __exit__
            self.error = err
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        async with (
            open_app(settings_for(self.tmp), url=self.db_url) as app,
            ApiServer(app.pool, app.catalog, api_settings(self.tmp), sink=app.sink) as server,
        ):
            self.url = server.url
            self.ready.set()
            await self.stop.wait()

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        assert self.ready.wait(60), "the API did not start"
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        if self.error:
            raise self.error


@pytest.fixture(scope="module")
def threaded(dataset_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ThreadedServer(dataset_url, tmp_path_factory.mktemp("threaded")) as s:
        yield s.url


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    # The database is up for the whole run: any 5xx (even a documented 503) is a failure.
    assert response.status_code < 500, (
        f"{case.operation.label} answered {response.status_code}: {response.text[:500]}"
    )
    return None


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

SCHEMA = schemathesis.openapi.from_dict(spec())
OPERATIONS = [r.ok() for r in SCHEMA.get_all_operations()]
# Fuzzed ranges rarely hit the dataset (most such requests are rightly refused with a 400),
# so each operation also runs with its range pinned to the data and the rest generated.
ANCHORS: dict[str, dict[str, str]] = {
    "/api/v1/readings": {"from": "2026-02-27", "to": "2026-03-02", "station": AIR[0]},
    "/api/v1/export/readings": {"from": "2026-02-28", "to": "2026-03-01", "station": AIR[2]},
    "/api/v1/aqi": {"from": "2026-02-27", "to": "2026-03-03"},
    "/api/v1/water": {"from": "2026-01", "to": "2026-04"},
    "/api/v1/trends": {
        "from": "2023-01",
        "to": "2026-01",
        "parameter": "nh3n",
        "station": WATER_TREND,
    },
    "/api/v1/targets": {"year": "2026", "as_of": "2026-03-09"},
}
CASES = (
    [(op, "positive") for op in OPERATIONS]
    + [(op, "anchored") for op in OPERATIONS if op.path in ANCHORS]
    + [
        # Negative data needs something to negate: operations with parameters or a body.
        (op, "negative")
        for op in OPERATIONS
        if op.definition.raw.get("parameters") or op.definition.raw.get("requestBody")
    ]
)


# Schemathesis draws some values with `random` inside its strategies, which Hypothesis
# deprecates; the warning is about schemathesis, not about this code.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize(("operation", "mode"), CASES, ids=[f"{m}-{op.label}" for op, m in CASES])
def test_schemathesis(threaded: str, operation: Any, mode: str) -> None:
    token = ADMIN if operation.method.upper() == "POST" else READ
    strategy = operation.as_strategy(
        generation_mode=schemathesis.GenerationMode(
            "negative" if mode == "negative" else "positive"
        ),
        query=ANCHORS[operation.path] if mode == "anchored" else None,
    )
    seen: list[int] = []

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        # Sent with requests directly: schemathesis' own transport trips over urllib3 2.8's
        # connection pools (TrafficPolice has no keys()); the case and the checks are its.
        kwargs = case.as_transport_kwargs(
            base_url=threaded, headers={"Authorization": f"Bearer {token}"}
        )
        with requests.Session() as session:
            resp = session.request(**kwargs, timeout=60)
        # Negative mode: input the document forbids must be refused with a 4xx.
        extra = [negative_data_rejection] if mode == "negative" else []
        case.validate_response(resp, checks=[*CHECKS, *extra])
        seen.append(resp.status_code)

    run()
    assert seen, "no request was made"
    if mode == "anchored":
        assert 200 in seen, f"{operation.label}: no request reached the data ({seen})"
