"""Exit 0 while the server can take predictions, 1 otherwise: for a supervisor's liveness check.

    python deploy/healthcheck.py [http://127.0.0.1:5000]

coglet 0.23.1 answers /health-check with HTTP 200 whatever its state, and never replaces a dead
worker (it stays UNHEALTHY); a supervisor (Kubernetes liveness probe, Docker/compose healthcheck with
a restart policy, systemd) that runs this and restarts the container on failure brings it back.
Standard library only, so it runs in the image as it is.
"""

import json
import sys
import urllib.request

SERVING = {"READY", "BUSY", "STARTING"}


def main() -> int:
    url = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000").rstrip("/")
    try:
        with urllib.request.urlopen(f"{url}/health-check", timeout=5) as response:  # noqa: S310 - loopback
            status = json.load(response).get("status")
    except (OSError, ValueError):
        status = "unreachable"
    print(status)
    return 0 if status in SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
