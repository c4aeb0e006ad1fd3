"""The README's commands, run as written against a real server, so the README cannot drift.

Every `bash` block that calls the API (`curl`) or the CLI (`medgemma predict`) and every `python`
block that calls the API is extracted and run; only the server address and the interpreter path are
substituted. The image they send is a real-sized X-ray stand-in (over the shell's argument limit).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medgemma.config import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, flags=re.DOTALL)
README_URL = "http://127.0.0.1:5000"
API_BLOCKS = [code for kind, code in BLOCKS if kind == "bash" and "curl " in code and README_URL in code]
CLI_BLOCKS = [code for kind, code in BLOCKS if kind == "bash" and "medgemma predict" in code]
PYTHON_BLOCKS = [code for kind, code in BLOCKS if kind == "python" and "requests.post" in code]


def test_the_readme_has_runnable_examples():
    assert len(API_BLOCKS) >= 2 and CLI_BLOCKS and PYTHON_BLOCKS


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with xray.png: 1,024x1,024 of noise, so well over the ~128 KiB a shell argument may hold."""
    folder = tmp_path_factory.mktemp("readme")
    pixels = np.random.default_rng(0).integers(0, 256, (1024, 1024), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "xray.png")
    assert (folder / "xray.png").stat().st_size > 512 * 1024
    return folder


def run(command: list[str], cwd, env=None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("index", range(len(API_BLOCKS)))
def test_readme_curl_examples_work(server, workdir, index):
    output = run(["bash", "-euo", "pipefail", "-c", API_BLOCKS[index].replace(README_URL, server.url)], workdir)
    if "text/event-stream" in API_BLOCKS[index]:
        events = [json.loads(line[5:]) for line in output.splitlines() if line.startswith("data:")]
        assert events[-1]["status"] == "succeeded", events[-1]
        assert events[-1]["metrics"]["input_token_count"] > 256  # the image arrived
    else:
        body = json.loads(output)
        assert body["status"] == "succeeded", body


def test_readme_python_client_works(server, workdir):
    for code in PYTHON_BLOCKS:
        output = run([sys.executable, "-c", code.replace(README_URL, server.url)], workdir)
        assert output.count("succeeded") >= 2, output


def test_readme_cli_example_works(tiny_weights, workdir):
    for code in CLI_BLOCKS:
        script = code.replace(".venv/bin/python", sys.executable)
        run(["bash", "-euo", "pipefail", "-c", script], workdir,
            env={"MEDGEMMA_WEIGHTS": str(tiny_weights), "MEDGEMMA_DEVICE": "cpu"})
