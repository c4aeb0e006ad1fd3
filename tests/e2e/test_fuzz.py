"""Property-based fuzzing of the running server from its own OpenAPI schema (schemathesis).

Inputs are generated from the schema the server publishes, valid and invalid alike. Image values
are rewritten before sending so the server never fetches anything but loopback or a data: URL.
"""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.images import data_url, png_bytes

EXAMPLES = 120
INTERNAL = "internal error"
LOOPBACK_IMAGES = [None, data_url(png_bytes((24, 24))), "data:image/png;base64,AAAA", "http://127.0.0.1:9/none.png"]


def _keep_on_loopback(case) -> None:
    """Replace any string image (a URL the fuzzer made up) with one that stays on this machine, and
    cap generation so that each example stays quick."""
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        return
    inputs = body["input"]
    if isinstance(inputs.get("image"), str):
        inputs["image"] = LOOPBACK_IMAGES[len(inputs["image"]) % len(LOOPBACK_IMAGES)]
    if isinstance(inputs.get("max_new_tokens"), int) and not isinstance(inputs["max_new_tokens"], bool):
        inputs["max_new_tokens"] = max(1, min(inputs["max_new_tokens"], 8))
    body.pop("webhook", None)


def test_fuzzed_predictions_never_fail_inside_the_server(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operation = schema["/predictions"]["POST"]
    seen = {"4xx": 0, "succeeded": 0, "failed": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case) -> None:
        _keep_on_loopback(case)
        response = case.call(base_url=server.url, timeout=60)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if response.status_code == 200:
            body = response.json()
            assert body["status"] in ("succeeded", "failed")
            assert INTERNAL not in (body.get("error") or ""), body.get("error")
            seen[body["status"]] += 1
        else:
            seen["4xx"] += 1

    check()
    print(f"\n{EXAMPLES} fuzzed requests: {seen}")
    assert seen["succeeded"] > 0 and seen["4xx"] > 0  # both valid and invalid inputs were exercised
    assert requests.get(f"{server.url}/health-check", timeout=5).json()["status"] == "READY"
    assert server.process.poll() is None
