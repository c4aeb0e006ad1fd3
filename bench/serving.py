"""Concurrent vs one-after-another predictions through the real Cog server, measured in one run.

    python bench/serving.py [--requests 8] [--tokens 48] [--image] [--stagger SECONDS]

Starts `python -m cog.server.http` on loopback with predict.py on the demo model (CPU) and
`COG_MAX_CONCURRENCY=<requests>`, then sends the same N greedy predictions (different prompts
and lengths) twice over server-sent events: one after another, then all at once. Prints the
aggregate tokens/s of each and their ratio, time to first token p50/p95 as the client sees it,
and whether every answer is identical between the two runs. With `--stagger S`, the concurrent
run starts request i at i·S seconds instead of all at once: requests then arrive while others
decode (what continuous batching, MEDGEMMA_CONTINUOUS_BATCHING=1, is for). Needs the demo model
(make demo).
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.support.server import Server, running_server  # noqa: E402

PROMPTS = [
    "Write a detailed overview of the anatomy of the human heart for a first-year lecture.",
    "Explain how vaccines train the immune system, for a high-school class.",
    "List the stages of mitosis and what happens in each.",
    "Describe how a chest X-ray is taken and what it can show, for a teaching slide.",
    "Summarise the history of anaesthesia in a paragraph.",
    "Explain the difference between sensitivity and specificity with an example.",
    "Write three multiple-choice questions about the kidney for a physiology quiz.",
    "Describe the structure of a neuron.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def demo_image() -> str:
    from PIL import Image, ImageDraw

    image = Image.new("L", (512, 512))
    ImageDraw.Draw(image).ellipse((96, 64, 416, 448), fill=200)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def one(server: Server, inputs: dict) -> dict:
    """One streamed prediction: its text, first-token latency, total time and metrics."""
    started = time.monotonic()
    first = None
    chunks: list[str] = []
    final: dict = {}
    for event, data, arrived in server.stream(inputs, timeout=600):
        if event == "output":
            first = first or arrived
            chunks.append(data["chunk"] if isinstance(data, dict) else data)
        elif event == "completed":
            final = data
    assert final.get("status") == "succeeded", final
    return {"text": "".join(chunks), "ttft": (first or time.monotonic()) - started,
            "seconds": time.monotonic() - started, "tokens": final["metrics"]["output_token_count"],
            "batch_size": final["metrics"].get("batch_size")}


def run_all(server: Server, requests: list[dict], concurrent: bool,
            stagger: float = 0.0) -> tuple[list[dict], float]:
    results: list[dict | None] = [None] * len(requests)
    started = time.monotonic()
    if concurrent:
        def work(index: int) -> None:
            time.sleep(index * stagger)
            results[index] = one(server, requests[index])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for index, inputs in enumerate(requests):
            results[index] = one(server, inputs)
    return results, time.monotonic() - started  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48, help="max_new_tokens of the longest request")
    parser.add_argument("--image", action="store_true", help="every request carries an image")
    parser.add_argument("--stagger", type=float, default=0.0,
                        help="seconds between the starts of the concurrent requests (default: all at once)")
    args = parser.parse_args()

    image = demo_image() if args.image else None
    requests = []
    for index in range(args.requests):
        inputs = {"prompt": PROMPTS[index % len(PROMPTS)], "max_new_tokens": args.tokens - 4 * (index % 4)}
        if image:
            inputs["image"] = image
        requests.append(inputs)

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as logs, \
            running_server(Path(logs), COG_MAX_CONCURRENCY=str(args.requests)) as server:
        print(f"server start to READY (guard, demo model, warm-up on every path): {time.monotonic() - started:.1f} s")
        one(server, requests[0])  # warm the server's paths once
        sequential, sequential_seconds = run_all(server, requests, concurrent=False)
        concurrent, concurrent_seconds = run_all(server, requests, concurrent=True, stagger=args.stagger)

    def report(name: str, results: list[dict], seconds: float) -> float:
        tokens = sum(r["tokens"] for r in results)
        ttft = [r["ttft"] for r in results]
        rate = tokens / seconds
        print(f"  {name:<14} {tokens:4d} tokens in {seconds:6.2f} s = {rate:6.1f} tokens/s; "
              f"TTFT p50 {statistics.median(ttft):.3f} s, p95 {percentile(ttft, 0.95):.3f} s")
        return rate

    kind = "image + text" if image else "text"
    print(f"{args.requests} {kind} greedy predictions (max_new_tokens {args.tokens - 12}..{args.tokens}), demo model, "
          "CPU, real Cog server, server-sent events:")
    sequential_rate = report("one at a time", sequential, sequential_seconds)
    concurrent_rate = report(f"{args.stagger:g} s apart" if args.stagger else "all at once", concurrent,
                             concurrent_seconds)
    batch_sizes = sorted({r["batch_size"] for r in concurrent if r["batch_size"] is not None})
    identical = sum(a["text"] == b["text"] for a, b in zip(sequential, concurrent, strict=True))
    print(f"  aggregate tokens/s ratio (concurrent / one at a time): {concurrent_rate / sequential_rate:.2f}x")
    print(f"  batch sizes seen when concurrent: {batch_sizes or 'continuous batching'}")
    print(f"  identical answers: {identical}/{len(requests)}")


if __name__ == "__main__":
    main()
