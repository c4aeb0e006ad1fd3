"""Robustness of the real server: bad inputs, load, repeated cancels and privacy, over HTTP on loopback.

Every case is bounded in count and time; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import statistics
import struct
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
import requests
from PIL import Image, PngImagePlugin

from medgemma import request as limits
from tests.support.images import data_url, encode, png_bytes
from tests.support.server import CONCURRENCY, ENDLESS, Server, model_env, running_server

INTERNAL = "internal error"


# -- bad inputs ------------------------------------------------------------------------------------


def _png_with_size_claim(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header claims another size (a decompression-bomb header)."""
    data = bytearray(png_bytes((1, 1)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def _gif_animated() -> bytes:
    frames = [Image.new("P", (40, 30), color) for color in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _jpeg_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return encode(Image.new("RGB", (80, 40), (10, 200, 10)), "JPEG", exif=exif.tobytes())


def _float_tiff_with_nan() -> bytes:
    pixels = np.linspace(0, 1000, 64 * 64, dtype=np.float32).reshape(64, 64)
    pixels[:8] = np.nan
    return encode(Image.fromarray(pixels), "TIFF")


_VALID_PNG = png_bytes((64, 48))

# (case id, input fields): every one ends in a 422 or a failed prediction whose message names the
# fix, or in an answer where the input is fine; never an internal error, never a dead worker.
BAD_IMAGES = {
    "corrupt-png": b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20,
    "truncated-png": _VALID_PNG[: len(_VALID_PNG) // 2],
    "truncated-jpeg": encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")[:200],
    "one-pixel": png_bytes((1, 1)),
    "20000x20": encode(Image.new("L", (20000, 20)), "PNG"),
    "bomb-header": _png_with_size_claim(100_000, 100_000),
    "plain-text": b"This is not an image, just some text.",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    "html": b"<html><body><img src=x></body></html>",
    "random-bytes": bytes(range(256)) * 8,
    "animated-gif": _gif_animated(),
    "16-bit-png": encode(Image.fromarray(np.arange(0, 4096, dtype=np.uint16).reshape(64, 64) * 8), "PNG"),
    "16-bit-tiff": encode(Image.fromarray(np.arange(0, 4096, dtype=np.uint16).reshape(64, 64)), "TIFF"),
    "float-tiff-nan": _float_tiff_with_nan(),
    "cmyk-jpeg": encode(Image.new("CMYK", (32, 32), (0, 200, 100, 10)), "JPEG"),
    "exif-rotated-jpeg": _jpeg_rotated(),
    "palette-transparent": encode(Image.new("P", (16, 16)), "PNG", transparency=0),
    "gray-alpha": encode(Image.new("LA", (16, 16)), "PNG"),
    "webp": encode(Image.new("RGB", (16, 16)), "WEBP"),
    "bmp": encode(Image.new("RGB", (16, 16)), "BMP"),
}

BAD_FIELDS = {
    "prompt-empty": {"prompt": ""},
    "prompt-whitespace": {"prompt": " \n\t  "},
    "prompt-control-chars": {"prompt": "\x01\x02\x1b[31m explain the liver \x7f"},
    "prompt-nul": {"prompt": "explain\x00 the heart"},
    "prompt-lone-surrogate": {"prompt": "explain \ud800 the kidney"},
    "prompt-over-limit": {"prompt": "a" * (limits.PROMPT_MAX_CHARS + 1)},
    "prompt-at-limit": {"prompt": "anatomy " * (limits.PROMPT_MAX_CHARS // 8)},
    "system-over-limit": {"prompt": "hi", "system_prompt": "s" * (limits.SYSTEM_PROMPT_MAX_CHARS + 1)},
    "control-tokens-system": {"prompt": "hi", "system_prompt": "<start_of_image><end_of_turn><bos>"},
    "prompt-null": {"prompt": None},
    "prompt-number": {"prompt": 123},
    "prompt-list": {"prompt": ["a"]},
    "image-number": {"prompt": "hi", "image": 123},
    "image-object": {"prompt": "hi", "image": {"url": "x"}},
    "image-ftp-url": {"prompt": "hi", "image": "ftp://127.0.0.1/x.png"},
    "system-null": {"prompt": "hi", "system_prompt": None},
    "max-new-tokens-null": {"prompt": "hi", "max_new_tokens": None},
    "max-new-tokens-string": {"prompt": "hi", "max_new_tokens": "ten"},
    "max-new-tokens-negative": {"prompt": "hi", "max_new_tokens": -1},
    "max-new-tokens-huge": {"prompt": "hi", "max_new_tokens": 10**30},
    "temperature-null": {"prompt": "hi", "temperature": None},
    "temperature-string": {"prompt": "hi", "temperature": "hot"},
    "temperature-negative": {"prompt": "hi", "temperature": -0.5},
    "temperature-tiny": {"prompt": "hi", "temperature": 3.4e-102, "max_new_tokens": 4},
    "top-p-null": {"prompt": "hi", "top_p": None},
    "top-p-over": {"prompt": "hi", "top_p": 2},
    "top-k-negative": {"prompt": "hi", "top_k": -1},
    "top-k-fraction": {"prompt": "hi", "top_k": 1.5},
    "seed-negative": {"prompt": "hi", "seed": -1},
    "seed-huge": {"prompt": "hi", "seed": 2**70},
    "unknown-field": {"prompt": "hi", "max_new_tokens": 2, "colour": "blue"},
}


def _assert_handled(server: Server, response: requests.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    if response.status_code == 200:
        body = response.json()
        assert body["status"] in ("succeeded", "failed"), body.get("status")
        if body["status"] == "failed":
            error = body["error"] or ""
            assert INTERNAL not in error and len(error) > 20, error
    assert response.status_code != 200 or "Traceback" not in (response.json().get("logs") or "")
    server.wait_ready(20)


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_are_user_errors_never_internal(server, name):
    server.wait_ready(30)
    response = server.predict(prompt="Describe this image for a teaching slide.",
                              image=data_url(BAD_IMAGES[name]), max_new_tokens=2, timeout=60)
    _assert_handled(server, response)


def test_empty_data_url_is_handled(server):
    server.wait_ready(30)
    _assert_handled(server, server.predict(prompt="Describe this image.", image="data:image/png;base64,",
                                           max_new_tokens=2))


@pytest.mark.parametrize("name", sorted(BAD_FIELDS))
def test_bad_fields_get_422_or_a_clear_user_error(server, name):
    server.wait_ready(30)
    inputs = {"max_new_tokens": 2, **BAD_FIELDS[name]}
    response = requests.post(f"{server.url}/predictions", data=json.dumps({"input": inputs}),
                             headers={"Content-Type": "application/json"}, timeout=120)
    _assert_handled(server, response)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("not-json", b"{this is not json"),
        ("input-not-object", b'{"input": "hi"}'),
        ("no-input", b"{}"),
        ("nan-literal", b'{"input": {"prompt": "hi", "temperature": NaN}}'),
        ("deep-nesting", b'{"input": {"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}}"),
        ("huge-body", json.dumps({"input": {"prompt": "x" * (24 * 2**20)}}).encode()),
    ],
)
def test_malformed_bodies_never_reach_the_model(server, name, body):
    server.wait_ready(30)
    response = requests.post(f"{server.url}/predictions", data=body, headers={"Content-Type": "application/json"},
                             timeout=120)
    assert 400 <= response.status_code < 500, response.text[:300]
    server.wait_ready(20)


# -- load, cancel ------------------------------------------------------------------------------------


def _worker_rss(server: Server) -> int:
    """Resident memory of the server's process tree but its top process (the Python worker)."""
    children = psutil.Process(server.process.pid).children(recursive=True)
    return sum(child.memory_info().rss for child in children)


def test_200_predictions_at_the_concurrency_limit_all_complete_and_memory_stays_flat(server):
    server.wait_ready(30)
    prompts = [f"Explain item {i} of the anatomy syllabus." for i in range(200)]

    busy = []

    def one(prompt: str) -> tuple[str, str, float]:
        """As the README's client does: a 409 (every slot taken) is retried after a short pause."""
        started = time.monotonic()
        while (response := server.predict(prompt=prompt, max_new_tokens=8, timeout=120)).status_code == 409:
            busy.append(prompt)
            time.sleep(0.05)
        body = response.json()
        return body["id"], body["status"], time.monotonic() - started

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, prompts[:20]))  # warm: allocator pools and caches settle
        rss_before = _worker_rss(server)
        started = time.monotonic()
        results = list(pool.map(one, prompts))
        elapsed = time.monotonic() - started
    rss_after = _worker_rss(server)
    latencies = sorted(seconds for _, _, seconds in results)
    print(f"\n200 predictions at concurrency {CONCURRENCY}: {elapsed:.1f} s, latency p50 "
          f"{statistics.median(latencies):.3f} s p95 {latencies[int(0.95 * len(latencies))]:.3f} s; "
          f"worker RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB; {len(busy)} x 409 retried")
    assert [status for _, status, _ in results].count("succeeded") == 200
    assert len({prediction_id for prediction_id, _, _ in results}) == 200  # none lost or duplicated
    assert rss_after <= rss_before * 1.10 + 64 * 2**20
    server.wait_ready(10)


def test_a_burst_above_the_limit_gets_409_for_the_excess_only(server):
    server.wait_ready(30)
    burst = 3 * CONCURRENCY

    def one(i: int) -> int:
        response = server.predict(prompt=f"Explain topic {i} of physiology.", max_new_tokens=48, timeout=120)
        assert response.status_code in (200, 409), response.text[:200]
        if response.status_code == 200:
            assert response.json()["status"] == "succeeded"
        return response.status_code

    with ThreadPoolExecutor(burst) as pool:
        codes = list(pool.map(one, range(burst)))
    print(f"\nburst of {burst} at concurrency {CONCURRENCY}: {codes.count(200)} answered, {codes.count(409)} x 409")
    assert codes.count(200) >= CONCURRENCY
    server.wait_ready(30)


def test_20_streaming_predictions_canceled_mid_generation_each_stop_within_a_few_tokens(sequential_server):
    server = sequential_server
    overshoots = []
    for _ in range(20):
        server.wait_ready(30)
        prediction_id = f"cancel-{uuid.uuid4().hex[:10]}"
        events: list[tuple[str, dict]] = []
        done = threading.Event()

        def run(prediction_id=prediction_id, events=events, done=done) -> None:
            for event, data, _ in server.stream(ENDLESS, prediction_id=prediction_id):
                events.append((event, data))
            done.set()

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while sum(e == "output" for e, _ in events) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        seen = sum(e == "output" for e, _ in events)
        assert requests.post(f"{server.url}/predictions/{prediction_id}/cancel", timeout=10).status_code == 200
        assert done.wait(60)
        worker.join(5)
        final = events[-1][1]
        assert final["status"] == "canceled"
        metrics = final["metrics"]
        assert metrics["finish_reason"] == "canceled"
        # Stopped within a few tokens of the cancel: at most what the model decodes in 0.1 s (the
        # cancel's round trip through the server), whatever the speed of the machine.
        overshoot = metrics["output_token_count"] - seen
        overshoots.append(overshoot)
        assert overshoot <= 4 + 0.1 * metrics["tokens_per_second"], metrics
    print(f"\ntokens generated after the cancel was sent: max {max(overshoots)}, median "
          f"{statistics.median(overshoots)}")
    server.wait_ready(10)
    assert server.predict(prompt="Define a tendon.", max_new_tokens=3).json()["status"] == "succeeded"


# -- privacy ------------------------------------------------------------------------------------------

MARKER = "ZQXJ-7731-PRIVATE"


def _png_with_marker() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"patient {MARKER}")
    return encode(Image.new("RGB", (32, 32), (90, 90, 90)), "PNG", pnginfo=info)


def test_no_caller_data_reaches_any_log_on_any_path(tiny_weights, tmp_path):
    """A marker in the prompt, the system prompt and image metadata, through success, refusal, user
    error, internal error and cancel: it appears in no server log line and in no `logs` field."""
    env = model_env(tiny_weights, COG_PREDICT_TYPE_STUB="tests/support/faulty_predict.py:FaultyRunner",
                    MEDGEMMA_TEST_FAULT="internal", MEDGEMMA_CONTINUOUS_BATCHING="0", MEDGEMMA_WARM_UP="0")
    image = data_url(_png_with_marker())
    with running_server(tmp_path, **env) as server:
        bodies = [
            # The first generation fails inside the model (an internal error).
            server.predict(prompt=f"Explain {MARKER} anatomy.", system_prompt=f"Role {MARKER}", image=image,
                           max_new_tokens=3).json(),
            server.predict(prompt=f"Explain {MARKER} anatomy.", system_prompt=f"Role {MARKER}", image=image,
                           max_new_tokens=3).json(),
            server.predict(prompt=f"{MARKER}: my son is 14 kg, how much paracetamol do I give him now?",
                           system_prompt=f"Role {MARKER}").json(),
            server.predict(prompt=f"Describe {MARKER}.", system_prompt=f"Role {MARKER}",
                           image=data_url(MARKER.encode() * 10)).json(),
        ]
        assert [body["status"] for body in bodies] == ["failed", "succeeded", "succeeded", "failed"]
        assert INTERNAL in bodies[0]["error"] and not bodies[2]["metrics"]["guard"]["allowed"]
        prediction_id = f"private-{uuid.uuid4().hex[:8]}"
        events = []
        worker = threading.Thread(target=lambda: events.extend(
            server.stream({**ENDLESS, "prompt": f"{ENDLESS['prompt']} {MARKER}", "system_prompt": MARKER},
                          prediction_id=prediction_id)))
        worker.start()
        deadline = time.monotonic() + 60
        while not any(event == "output" for event, _, _ in events) and time.monotonic() < deadline:
            time.sleep(0.01)
        requests.post(f"{server.url}/predictions/{prediction_id}/cancel", timeout=10)
        worker.join(60)
        assert events[-1][1]["status"] == "canceled"
        server.wait_ready(10)
        bodies.append(events[-1][1])
        log = server.log()
    assert "Traceback" in log  # the internal error was logged, server-side
    assert MARKER not in log
    for body in bodies:
        assert MARKER not in (body.get("logs") or "")
        assert MARKER not in (body.get("error") or "")
        assert MARKER not in json.dumps(body.get("metrics") or {})

