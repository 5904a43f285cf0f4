"""The OpenAPI document is exact enough to catch an answer that drifts from it, and the hook in
``serve`` really checks what the suite's backends send."""

from __future__ import annotations

import json

from backend.state import EVENTS
from corral.shapes import EventType
from tests.conformance import Conformance
from tests.conftest import Api


def _health(**changes: object) -> bytes:
    body = {
        "status": "ok",
        "database": "ok",
        "docker": "ok",
        "runtime": "runsc",
        "limits_enforced": True,
        "engines": {"local": {"docker": "ok", "runtime": "ok"}},
        **changes,
    }
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_a_conforming_answer_passes() -> None:
    conformance = Conformance()
    conformance.check("get", "/health", 200, "application/json", _health())
    assert conformance.faults == [] and conformance.checked == 1


def test_drift_is_caught() -> None:
    conformance = Conformance()
    cases = [
        (200, _health(extra="x")),  # a key the document does not declare
        (200, _health(limits_enforced="yes")),  # a wrong type
        (200, _health(database="maybe")),  # outside an enum
        (503, _health(runtime=None)),  # a required key missing
        (418, _health()),  # a status the route does not list
    ]
    for status, body in cases:
        conformance.check("get", "/health", status, "application/json", body)
    assert len(conformance.faults) == len(cases), conformance.faults
    conformance.check("get", "/no/such/route", 200, "application/json", b"{}")
    assert "not in the document" in conformance.faults[-1]


async def test_the_suite_backends_check_every_answer(api: Api) -> None:
    """``serve`` validates what its clients receive: an error body, and a container object."""
    _, headers = await api.user()
    assert (await api.client.get("/api/containers/nope", headers=headers)).status == 404
    assert (await api.client.get("/api/containers", headers=headers)).status == 200
    assert api.conformance.checked == 2 and api.conformance.faults == []


async def test_events_are_checked_too(api: Api) -> None:
    """Every event the backend commits is held to the events stream's message schema."""
    log = api.app[EVENTS]
    await log.publish("someone", EventType.CONTAINER_UPDATED, {"id": "x"})
    progress = {"id": "x", "db_id": "x", "name": "n", "message": "m", "progress": 10}
    await log.publish("someone", EventType.CONTAINER_PROGRESS, {**progress, "stage": "volume"})
    await log.publish("someone", EventType.CONTAINER_PROGRESS, {**progress, "stage": "warp"})
    faults = list(api.conformance.faults)
    api.conformance.faults.clear()  # the faults were made on purpose; the test must not fail
    assert len(faults) == 2, faults
    assert faults[0].startswith("event container_updated")
    assert faults[1].startswith("event container_progress")  # a stage outside the enum
