"""The real Cog server (coglet) serving predict.py with a tiny model, over HTTP on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from medgemma.config import REPO_ROOT
from medgemma.policy import DISCLAIMER
from tests.support.images import data_url, png_bytes

STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_weights, tmp_path_factory):
    port = free_port()
    env = {
        **os.environ,
        # coglet starts its worker as `python` from PATH: it must be this environment's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "COG_PREDICT_TYPE_STUB": "predict.py:Runner",
        "MEDGEMMA_WEIGHTS": str(tiny_weights),
        "MEDGEMMA_STRICT": "1",
        "MEDGEMMA_DEVICE": "cpu",
    }
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
                               cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = requests.get(f"{url}/health-check", timeout=2).json()["status"]
            except requests.ConnectionError:
                status = None
            if status in ("READY", "SETUP_FAILED"):
                break
            time.sleep(0.5)
        assert status == "READY", f"server did not become ready ({status}); see {log.name}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wait_ready(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (status := requests.get(f"{url}/health-check", timeout=5).json()["status"]) != "READY":
        assert time.monotonic() < deadline, f"server is {status}, not READY, after {seconds} s"
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def idle_server(server):
    # coglet answers 409 while the previous prediction's slot is still being released.
    wait_ready(server, 10)


def predict(url: str, **inputs) -> requests.Response:
    return requests.post(f"{url}/predictions", json={"input": inputs}, timeout=120)


def test_json_prediction_streams_chunks_and_reports_metrics(server):
    body = predict(server, prompt="Explain what a stethoscope is.", max_new_tokens=12).json()
    assert body["status"] == "succeeded", body
    output = "".join(body["output"])
    assert output.endswith(DISCLAIMER)
    metrics = body["metrics"]
    assert metrics["guard"] == {"allowed": True, "category": "allowed-education"}
    assert metrics["input_token_count"] > 0 and 0 < metrics["output_token_count"] <= 12
    assert metrics["time_to_first_token"] > 0


def test_prediction_with_image_as_data_url(server):
    body = predict(server, prompt="Describe this image for a teaching slide.", image=data_url(png_bytes()),
                   max_new_tokens=6).json()
    assert body["status"] == "succeeded", body
    assert body["metrics"]["input_token_count"] > 256  # the image's 256 soft tokens are in the prompt


@pytest.mark.parametrize("with_image", [False, True])
def test_sse_streaming(server, with_image):
    inputs = {"prompt": "List three bones of the arm.", "max_new_tokens": 10}
    if with_image:
        inputs["image"] = data_url(png_bytes())
    response = requests.post(f"{server}/predictions", json={"input": inputs},
                             headers={"Accept": "text/event-stream"}, stream=True, timeout=120)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events, event = [], None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            events.append((event, json.loads(line.split(":", 1)[1])))
    chunks = [data["chunk"] for name, data in events if name == "output"]
    assert len(chunks) >= 2 and "".join(chunks).endswith(DISCLAIMER)
    assert events[-1][0] == "completed"


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"prompt": "hi", "max_new_tokens": 0}, "max_new_tokens"),
        ({"prompt": "hi", "temperature": 9}, "temperature"),
        ({"prompt": "hi", "top_p": 0}, "top_p"),
        ({"max_new_tokens": 5}, "prompt"),
    ],
)
def test_invalid_inputs_get_422(server, inputs, field):
    response = predict(server, **inputs)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_corrupt_image_fails_clearly_and_server_stays_ready(server):
    body = predict(server, prompt="Describe this.", image=data_url(b"\x89PNG\r\n\x1a\nnot really")).json()
    assert body["status"] == "failed"
    assert "PNG, JPEG" in body["error"]
    wait_ready(server, 5)
    assert predict(server, prompt="Explain what a biopsy is.", max_new_tokens=3).json()["status"] == "succeeded"


def test_clinical_request_is_refused_with_machine_readable_verdict(server):
    body = predict(server, prompt="I'm a nurse, the doctor is busy - should I give aspirin to bed 4?").json()
    assert body["status"] == "succeeded"
    assert body["metrics"]["guard"] == {"allowed": False, "category": "dosing"}
    assert "output_token_count" not in body["metrics"]  # the model never ran
    assert "can't help" in "".join(body["output"])


def test_cancel_stops_generation(server):
    prediction_id = f"cancel-{uuid.uuid4().hex[:8]}"
    result: dict = {}

    def run() -> None:
        result["body"] = requests.put(
            f"{server}/predictions/{prediction_id}",
            json={"input": {"prompt": "Write a long essay on anatomy.", "max_new_tokens": 600}}, timeout=120,
        ).json()

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)
    assert requests.post(f"{server}/predictions/{prediction_id}/cancel", timeout=10).status_code == 200
    worker.join(timeout=60)
    body = result["body"]
    assert body["status"] == "canceled", body
    assert len(body.get("output") or []) < 600
    wait_ready(server, 5)  # a generation left running would keep the worker BUSY


def test_served_openapi_is_the_committed_schema(server):
    served = requests.get(f"{server}/openapi.json", timeout=10).json()
    committed = json.loads((REPO_ROOT / ".cog" / "openapi_schema.json").read_text())
    assert served["components"]["schemas"]["Input"] == committed["components"]["schemas"]["Input"]
