"""deploy/: the nginx front in front of the real server, and the health check a supervisor runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from medgemma.config import REPO_ROOT
from tests.support.images import data_url, png_bytes
from tests.support.server import free_port, running_server

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def stack(tiny_long_weights, tmp_path_factory):
    """coglet on a loopback port, nginx with deploy/nginx.conf in front of it."""
    tmp = tmp_path_factory.mktemp("front")
    env = {"MEDGEMMA_WEIGHTS": str(tiny_long_weights), "MEDGEMMA_STRICT": "1", "MEDGEMMA_DEVICE": "cpu",
           "COG_MAX_CONCURRENCY": "4"}
    with running_server(tmp, **env) as server:
        front_port = free_port()
        conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
        conf = conf.replace("127.0.0.1:5000;", f"{server.url.removeprefix('http://')};")
        conf = conf.replace("127.0.0.1:8080;", f"127.0.0.1:{front_port};")
        conf = conf.replace("/tmp/medgemma-front", str(tmp / "front"))
        (tmp / "nginx.conf").write_text(conf)
        nginx = subprocess.Popen([NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                                 stdout=subprocess.DEVNULL, stderr=(tmp / "nginx.log").open("w"))
        front = f"http://127.0.0.1:{front_port}"
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    requests.get(f"{front}/health-check", timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            yield server, front
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=20)


def test_predictions_stream_through_the_front(stack):
    server, front = stack
    response = requests.post(f"{front}/predictions", json={"input": {"prompt": "List the bones of the arm.",
                                                                     "max_new_tokens": 24}},
                             headers={"Accept": "text/event-stream"}, stream=True, timeout=60)
    assert response.status_code == 200
    arrivals = [time.monotonic() for line in response.iter_lines() if line.startswith(b"event: output")]
    assert len(arrivals) >= 3 and arrivals[0] < arrivals[-1]  # chunks came one by one, not in a lump
    body = requests.post(f"{front}/predictions", json={"input": {"prompt": "Describe this image.",
                                                                 "image": data_url(png_bytes())}}, timeout=60).json()
    assert body["status"] == "succeeded"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/shutdown"),
    ("PUT", "/predictions/my-own-id"),
    ("PUT", "/predictions/" + "x" * 300),
    ("POST", "/predictions/..%2F..%2Fescape/cancel"),
    ("GET", "/predictions"),
    ("DELETE", "/predictions"),
    ("GET", "/"),
])
def test_only_what_clients_need_is_exposed(stack, method, path):
    server, front = stack
    response = requests.request(method, f"{front}{path}", json={"input": {"prompt": "hi"}}, timeout=10)
    assert response.status_code in (400, 403, 404, 405)  # nginx itself refuses an encoded "../" (400)
    assert server.health() == "READY"  # nothing of it reached the server


def test_cancel_reaches_the_server_for_its_own_ids(stack):
    server, front = stack
    response = requests.post(f"{front}/predictions/pred_0123456789abcdef/cancel", timeout=10)
    assert response.status_code == 404  # the server's own answer: no such prediction


def test_bodies_over_the_limit_are_stopped_at_the_front(stack):
    server, front = stack
    huge = {"input": {"prompt": "x" * (73 * 2**20)}}
    response = requests.post(f"{front}/predictions", json=huge, timeout=60)
    assert response.status_code == 413


def test_the_health_check_fails_when_the_worker_dies(tiny_weights, tmp_path):
    """coglet answers 200 whatever its state and never replaces a dead worker: the supervisor's
    check must fail so the container gets restarted."""
    script = [sys.executable, str(REPO_ROOT / "deploy" / "healthcheck.py")]
    env = {"MEDGEMMA_WEIGHTS": str(tiny_weights), "MEDGEMMA_STRICT": "1", "MEDGEMMA_DEVICE": "cpu",
           "MEDGEMMA_WARM_UP": "0"}
    with running_server(tmp_path, **env) as server:
        assert subprocess.run([*script, server.url], capture_output=True).returncode == 0
        workers = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout
        for pid in workers.split():
            os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while server.health() in ("READY", "BUSY") and time.monotonic() < deadline:
            time.sleep(0.2)
        result = subprocess.run([*script, server.url], capture_output=True, text=True)
        assert result.returncode == 1, result.stdout
    assert subprocess.run([*script, server.url], capture_output=True).returncode == 1  # gone entirely
