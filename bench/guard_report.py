"""How well the guard holds, on text it was not trained on; prints the README's tables.

    python bench/guard_report.py [--no-cv] [--show-errors]

- ../shared/guard/dev.jsonl (real public text; never trained on): recall and false refusals overall
  and by kind, language and source;
- our held-out corpus (medgemma/guard/corpus/heldout, written by other authors than the training
  corpus): overall, by language and by style (the adversarial families);
- asks buried in the middle of long exam items, and those long items untouched;
- grouped cross-validation of the decision head on the training data: leave-one-language-out and
  leave-one-source-out (how it does on a language or source it never saw);
- latency on this machine for requests up to 2,000 characters, and the guard's setup time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medgemma.guard import Guard, features  # noqa: E402
from medgemma.guard import train as training  # noqa: E402
from medgemma.guard.evaluate import Rates, cross_validate, evaluate, pooled  # noqa: E402

LATENCY_MAX_CHARS = 2000


def table(title: str, groups: dict[str, Rates], *, min_items: int = 1) -> None:
    print(f"\n{title}\n\n| group | items | clinical recall | false refusals |\n|---|---:|---:|---:|")
    for name, rates in sorted(groups.items()):
        if rates.clinical + rates.allowed >= min_items:
            print(f"| {name} | {rates.row()} |")


def show_errors(rates: Rates) -> None:
    for example in rates.missed_items:
        print(f"  MISSED  [{example.language} {example.kind}] {example.text[:160]!r}")
    for example in rates.refused_items:
        print(f"  REFUSED [{example.language} {example.kind}] {example.text[:160]!r}")


def buried_asks(guard: Guard, examples: list[training.Example], seed: int = 0) -> tuple[int, int, int]:
    """Insert a short clinical ask in the middle of each long allowed item; count what is caught."""
    rng = random.Random(seed)
    longs = [e for e in examples if not e.clinical and features.units(e.text) > 700]
    asks = [e.text for e in examples if e.clinical and features.units(e.text) <= 200]
    caught = refused_untouched = 0
    for example in longs:
        parts = features.sentences(example.text)
        middle = len(parts) // 2
        caught += not guard.screen(" ".join(parts[:middle] + [rng.choice(asks)] + parts[middle:])).allowed
        refused_untouched += not guard.screen(example.text).allowed
    return len(longs), caught, refused_untouched


def latency(guard: Guard, texts: list[str]) -> list[float]:
    timings = []
    for text in texts:
        started = time.perf_counter()
        guard.screen(text)
        timings.append(1000 * (time.perf_counter() - started))
    return sorted(timings)


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-cv", action="store_true", help="skip cross-validation (the slow part)")
    parser.add_argument("--show-errors", action="store_true", help="print every miss and false refusal")
    args = parser.parse_args()

    started = time.perf_counter()
    guard = Guard().load()
    print(f"guard setup: {time.perf_counter() - started:.2f} s")

    dev = training.load_shared(training.shared_guard_dir() / "dev.jsonl")
    held = training.load_corpus("heldout")
    for name, examples in (("shared dev (real public text)", dev), ("our held-out corpus", held)):
        report = evaluate(examples, screen_fn=guard.screen)
        print(f"\n## {name}: {report.overall.row()}  (items | recall | false refusals)")
        table(f"{name}, by language", report.by["language"])
        table(f"{name}, by kind or style", report.by["kind"])
        if name.startswith("shared"):
            table(f"{name}, by source", report.by["group"])
        else:
            emergencies = [v for e, v in zip(examples, report.verdicts, strict=True) if e.category == "emergency"]
            print(f"\nemergencies refused with emergency advice: {sum(v.emergency for v in emergencies)} of "
                  f"{len(emergencies)}; languages recognised: "
                  f"{sum(v.language == e.language for e, v in zip(examples, report.verdicts, strict=True))} of "
                  f"{len(examples)}")
        if args.show_errors:
            show_errors(report.overall)

    total, caught, refused = buried_asks(guard, dev + held)
    print(f"\nasks buried mid-text in {total} long allowed items: {caught} caught; "
          f"the same items untouched: {refused} refused")

    texts = [e.text for e in dev + held if len(e.text) <= LATENCY_MAX_CHARS]
    long_texts = [(" ".join(e.text for e in dev[i : i + 12]))[:LATENCY_MAX_CHARS] for i in range(0, 240, 12)]
    for name, sample in (("dev + held-out items", texts), (f"{LATENCY_MAX_CHARS}-character prompts", long_texts)):
        timings = latency(guard, sample)
        print(f"latency, {name} ({len(timings)}): p50 {percentile(timings, 0.5):.1f} ms, "
              f"p99 {percentile(timings, 0.99):.1f} ms, max {timings[-1]:.1f} ms, "
              f"mean {statistics.fmean(timings):.1f} ms")

    if args.no_cv:
        return
    # The decision head learns from the health-related examples only (everyday text is the topic
    # gate's job), so its cross-validation runs on those.
    examples = [e for e in training.training_examples() if not training.is_everyday(e)]
    cache = training.EmbeddingCache(features.Embedder(), training.default_cache_path())
    overviews = [features.overview(e.text) for e in examples]
    decision_x = training.decision_features(cache.embed(overviews), overviews)
    cache.save()
    threshold = guard.model.decision_threshold
    for title, key in (("leave-one-language-out", lambda e: e.language),
                       ("leave-one-source-out", lambda e: e.group)):
        results = cross_validate(examples, decision_x, key, training.DECISION_C, threshold)
        table(f"decision head, {title} (training data; each group scored by a head trained without it)",
              results, min_items=20)
        print(f"\npooled {title}: {pooled(results).row()}")


if __name__ == "__main__":
    main()
