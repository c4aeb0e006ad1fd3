"""Wrapper overhead and warm setup of the demo model, measured in one run.

    python bench/overhead.py [--tokens 64] [--rounds 5]

Compares the full service path (guard, prompt, tokenizer, batching scheduler, streamed tokens,
disclaimer) with plain `model.generate` on the same model inputs and the same number of new
tokens, alternating the two so drift on the machine hits both. Needs the demo model (make demo).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medgemma.config import ServiceConfig  # noqa: E402
from medgemma.loader import load_service  # noqa: E402
from medgemma.policy import footer  # noqa: E402
from medgemma.request import GenerationRequest  # noqa: E402

PROMPT = "Write a detailed overview of the anatomy of the human heart for a first-year lecture."


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(torch.get_num_threads())
    started = time.perf_counter()
    service = load_service(ServiceConfig(device="cpu"))
    setup_seconds = time.perf_counter() - started
    print(f"warm setup (weights already converted): {setup_seconds:.2f} s, peak RSS {peak_rss_mib():.0f} MiB")

    engine = service.engine
    request = GenerationRequest(prompt=PROMPT, max_new_tokens=args.tokens)
    # The same model inputs for plain transformers; min_new_tokens makes both produce exactly N tokens.
    inputs = engine.prepare(request)
    prompt_length = int(inputs["input_ids"].shape[1])

    def raw() -> tuple[float, str]:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = engine.model.generate(**inputs, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                                        do_sample=False)
        answer = engine.tokenizer.decode(out[0, prompt_length:], skip_special_tokens=True,
                                         clean_up_tokenization_spaces=False)
        return time.perf_counter() - t0, answer

    def ours() -> tuple[float, str]:
        t0 = time.perf_counter()
        answer = "".join(service.answer(request))
        return time.perf_counter() - t0, answer.removesuffix(footer(demo_notice=service.demo_notice))

    ours()  # warm-up both paths once
    raw()
    raw_times, our_times, identical = [], [], True
    for _ in range(args.rounds):
        raw_seconds, raw_text = raw()
        our_seconds, our_text = ours()
        raw_times.append(raw_seconds)
        our_times.append(our_seconds)
        identical &= raw_text == our_text
    raw_median, our_median = statistics.median(raw_times), statistics.median(our_times)
    print(f"{args.tokens} new tokens, {args.rounds} alternating rounds, median seconds:")
    print(f"  raw model.generate : {raw_median:.3f} s ({args.tokens / raw_median:.1f} tokens/s)")
    print(f"  medgemma service   : {our_median:.3f} s ({args.tokens / our_median:.1f} tokens/s)")
    print(f"  overhead           : {100 * (our_median / raw_median - 1):+.2f} %  (ratio {our_median / raw_median:.4f})")
    print(f"  outputs identical  : {identical}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    service.close()


if __name__ == "__main__":
    main()
