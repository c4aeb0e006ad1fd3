"""Reproduce the Cog server's (coglet's) own defects against a local server, one by one.

    python -m tools.coglet_defects [--weights DIR]

Starts `python -m cog.server.http` on loopback with predict.py (the demo model by default), runs
each minimal reproduction listed in SECURITY.md, and prints which still reproduce: run it again
on a newer cog to see what it fixes. Everything stays on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.server import Server, running_server  # noqa: E402

PREDICTIONS_DIR = Path("/tmp/coglet/predictions")


class Bait:
    """A loopback HTTP server that records who called it, for the URL and webhook checks."""

    def __init__(self):
        self.requests: list[str] = []
        self.bytes_sent = 0
        bait = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                bait.requests.append(self.path)
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/secret.png")
                    self.end_headers()
                    return
                if self.path == "/bomb.png":  # 200 MiB of zeros, 200 KiB on the wire
                    body = gzip.compress(b"\0" * (200 * 2**20), compresslevel=9)
                    self.send_response(200)
                    self.send_header("Content-Encoding", "gzip")
                else:
                    body = b"loopback-only content"
                    self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                bait.bytes_sent += len(body)

            do_POST = do_GET  # noqa: N815 - webhooks POST

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def status(server: Server) -> str:
    try:
        return server.health()
    except requests.RequestException:
        return "unreachable"


def check_long_id_wedges(server: Server) -> str:
    response = requests.put(f"{server.url}/predictions/{'x' * 300}", json={"input": {"prompt": "Define a rib."}},
                            timeout=30)
    stuck = not wait_for(lambda: status(server) == "READY", 20)
    return f"PUT /predictions/<300 chars> -> HTTP {response.status_code}; health afterwards: {status(server)}" + (
        " (stuck)" if stuck else "")


def check_traversal_id(server: Server) -> str:
    marker = f"traversal-{os.getpid()}"
    target = PREDICTIONS_DIR.parent.parent / marker
    response = requests.put(f"{server.url}/predictions/..%2F..%2F{marker}", json={"input": {"prompt": "Define a rib."}},
                            timeout=60)
    escaped = target.exists()
    if escaped:
        subprocess.run(["rm", "-rf", str(target)], check=False)
    return f"PUT /predictions/../../{marker} -> HTTP {response.status_code}; {target} created: {escaped}"


def check_leftover_directories(server: Server) -> str:
    before = len(list(PREDICTIONS_DIR.iterdir())) if PREDICTIONS_DIR.is_dir() else 0
    for _ in range(3):
        server.predict(prompt="Define a rib.", max_new_tokens=1)
    after = len(list(PREDICTIONS_DIR.iterdir())) if PREDICTIONS_DIR.is_dir() else 0
    return f"3 predictions; directories under {PREDICTIONS_DIR}: {before} -> {after}"


def check_url_fetch(server: Server, bait: Bait) -> str:
    bait.requests.clear()
    server.predict(prompt="Describe this image.", image=f"{bait.url}/redirect")
    return f"image URL on loopback with a redirect: server fetched {bait.requests}"


def check_gzip_bomb(server: Server, bait: Bait) -> str:
    temp = Path(tempfile.gettempdir())
    before = {p for p in temp.glob("tmp*")}
    largest = [0]
    done = threading.Event()

    def watch() -> None:  # the predictor reads and removes the download: look while it exists
        while not done.is_set():
            for path in set(temp.glob("tmp*")) - before:
                try:
                    largest[0] = max(largest[0], path.stat().st_size)
                except OSError:
                    pass
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    body = server.predict(prompt="Describe this image.", image=f"{bait.url}/bomb.png", timeout=120).json()
    done.set()
    watcher.join()
    return (f"gzip bomb ({bait.bytes_sent / 2**10:.0f} KiB on the wire): prediction {body.get('status')} after "
            f"{time.monotonic() - started:.1f} s; largest download file seen {largest[0] / 2**20:.0f} MiB")


def check_webhook(server: Server, bait: Bait) -> str:
    bait.requests.clear()
    requests.post(f"{server.url}/predictions", json={"input": {"prompt": "Define a rib.", "max_new_tokens": 1},
                                                      "webhook": f"{bait.url}/hook"}, timeout=60)
    wait_for(lambda: bool(bait.requests), 10)
    return f"webhook on loopback: server called {bait.requests[:3]}"


def check_sequential_409(server: Server) -> str:
    codes = [server.predict(prompt="Define a rib.", max_new_tokens=1).status_code for _ in range(100)]
    return f"100 back-to-back requests, one client, one slot: {codes.count(409)} x 409"


def check_shutdown(server: Server) -> str:
    response = requests.post(f"{server.url}/shutdown", timeout=10)
    down = wait_for(lambda: server.process.poll() is not None or status(server) == "unreachable", 20)
    return f"POST /shutdown without credentials -> HTTP {response.status_code}; server stopped: {down}"


def check_dead_worker(server: Server) -> str:
    workers = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
    for pid in workers:
        os.kill(int(pid), signal.SIGKILL)
    wait_for(lambda: status(server) not in ("READY", "BUSY"), 20)
    time.sleep(30)
    return f"worker killed: health 30 s later: {status(server)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="weights directory (default: the demo model)")
    args = parser.parse_args()
    env = {"MEDGEMMA_DEVICE": "cpu", "MEDGEMMA_WARM_UP": "0"}
    if args.weights:
        env["MEDGEMMA_WEIGHTS"] = args.weights
    bait = Bait()
    log_dir = Path(tempfile.mkdtemp(prefix="coglet-defects-"))
    checks = [
        ("one slot: back-to-back 409s", lambda s: check_sequential_409(s), {}),
        ("predictions leave directories", lambda s: check_leftover_directories(s), {}),
        ("image URLs: any address, redirects", lambda s: check_url_fetch(s, bait), {}),
        ("image URLs: no size cap", lambda s: check_gzip_bomb(s, bait), {}),
        ("webhooks: any address", lambda s: check_webhook(s, bait), {}),
        ("prediction id used as a path", lambda s: check_traversal_id(s), {}),
        ("prediction id that wedges the server", lambda s: check_long_id_wedges(s), {}),
        ("unauthenticated shutdown", lambda s: check_shutdown(s), {}),
        ("dead worker never respawned", lambda s: check_dead_worker(s), {}),
    ]
    try:
        for name, check, extra in checks:
            with running_server(log_dir, **env, **extra) as server:
                print(f"- {name}: {check(server)}", flush=True)
    finally:
        bait.close()


if __name__ == "__main__":
    main()
