"""Guard quality and latency on both splits of the labelled set, with every case it gets wrong.

    python bench/guard_report.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.guard_eval import evaluate, latencies_ms, load_rows  # noqa: E402


def main() -> None:
    for split in ("dev", "heldout"):
        rows = load_rows(split)
        report = evaluate(rows)
        print(f"{split}: {len(rows)} prompts ({report.clinical} clinical, {report.allowed} allowed) - "
              f"clinical recall {100 * report.recall:.1f} %, false refusals {100 * report.false_refusal_rate:.1f} %")
        for row in report.missed:
            print(f"  MISSED  [{row['category']}, got {row['got']}] {row['prompt']}")
        for row in report.false_refusals:
            print(f"  REFUSED [{row['category']}, got {row['got']}] {row['prompt']}")
    timings = latencies_ms(load_rows())
    p50, p99 = timings[len(timings) // 2], timings[int(len(timings) * 0.99)]
    print(f"latency over {len(timings)} calls: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {timings[-1]:.3f} ms")


if __name__ == "__main__":
    main()
