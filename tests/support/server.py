"""The real Cog server (coglet) serving predict.py, in a subprocess on loopback, for the e2e tier."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from medgemma.config import REPO_ROOT
from tests.support.images import data_url, png_bytes

STARTUP_SECONDS = 180
CONCURRENCY = 4
# The tiny model answers this with one token repeated, never ending its turn: a long generation.
ENDLESS = {"prompt": "Describe this image for a teaching slide, word by word.", "image": data_url(png_bytes((32, 32))),
           "max_new_tokens": 4000}


def model_env(tiny_weights, **extra) -> dict[str, str]:
    """The tiny model in production mode on the CPU."""
    return {"MEDGEMMA_WEIGHTS": str(tiny_weights), "MEDGEMMA_STRICT": "1", "MEDGEMMA_DEVICE": "cpu", **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def health(self) -> str:
        return requests.get(f"{self.url}/health-check", timeout=5).json()["status"]

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while (status := self.health()) != "READY":
            assert time.monotonic() < deadline, f"server is {status}, not READY, after {seconds} s"
            time.sleep(0.05)

    def predict(self, timeout: float = 120, **inputs) -> requests.Response:
        return requests.post(f"{self.url}/predictions", json={"input": inputs}, timeout=timeout)

    def stream(self, inputs: dict, prediction_id: str | None = None, timeout: float = 120):
        """Yield (event, data, arrival time) from a server-sent-events prediction."""
        url = f"{self.url}/predictions" + (f"/{prediction_id}" if prediction_id else "")
        method = requests.put if prediction_id else requests.post
        response = method(url, json={"input": inputs}, headers={"Accept": "text/event-stream"}, stream=True,
                          timeout=timeout)
        assert response.status_code == 200, response.text
        event = None
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                yield event, json.loads(line.split(":", 1)[1]), time.monotonic()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(log_dir: Path, **env: str) -> Iterator[Server]:
    """Start `python -m cog.server.http` from the repository with `env` on top of this one."""
    port = free_port()
    full_env = {
        **os.environ,
        # coglet starts its worker as `python` from PATH: it must be this environment's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "COG_PREDICT_TYPE_STUB": "predict.py:Runner",
        **env,
    }
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"], cwd=REPO_ROOT,
                                   env=full_env, stdout=log, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            status = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status = server.health()
                except requests.ConnectionError:
                    status = None
                if status in ("READY", "SETUP_FAILED"):
                    break
                time.sleep(0.5)
            assert status == "READY", f"server did not become ready ({status}):\n{server.log()[-3000:]}"
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
