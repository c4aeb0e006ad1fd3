"""Measuring the guard: recall and false refusals, overall and by group, and grouped cross-validation.

Used by the tests (which gate on the shared dev set and our held-out corpus) and by
bench/guard_report.py (which prints the tables in the README).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import Verdict, screen
from .train import Example

# The quality bar: on real public text (the shared dev set), and on written sets of general and
# adversarial prompts (our held-out corpus is one).
MIN_RECALL = 0.95
MAX_FALSE_REFUSALS_REAL = 0.03
MAX_FALSE_REFUSALS_WRITTEN = 0.05


@dataclass
class Rates:
    clinical: int = 0
    caught: int = 0
    allowed: int = 0
    refused: int = 0
    missed_items: list[Example] = field(default_factory=list)
    refused_items: list[Example] = field(default_factory=list)

    def add(self, example: Example, verdict_allowed: bool) -> None:
        if example.clinical:
            self.clinical += 1
            if verdict_allowed:
                self.missed_items.append(example)
            else:
                self.caught += 1
        else:
            self.allowed += 1
            if not verdict_allowed:
                self.refused += 1
                self.refused_items.append(example)

    @property
    def recall(self) -> float | None:
        return self.caught / self.clinical if self.clinical else None

    @property
    def false_refusals(self) -> float | None:
        return self.refused / self.allowed if self.allowed else None

    def row(self) -> str:
        recall = "–" if self.recall is None else f"{self.recall:.3f}"
        refusals = "–" if self.false_refusals is None else f"{self.false_refusals:.3f}"
        return f"{self.clinical + self.allowed} | {recall} | {refusals}"


@dataclass
class Report:
    overall: Rates
    by: dict[str, dict[str, Rates]]
    verdicts: list[Verdict]


def evaluate(examples: Sequence[Example], *, raw_prompts: Sequence[tuple[str, str | None]] | None = None,
             screen_fn: Callable[..., Verdict] = screen, group_by: Sequence[str] = ("language", "kind", "group"),
             ) -> Report:
    """Screen each example and count. `raw_prompts` (prompt, system_prompt) pass the caller's own
    text through `screen`; without them the already-hardened `example.text` is screened."""
    overall = Rates()
    by: dict[str, dict[str, Rates]] = {name: defaultdict(Rates) for name in group_by}
    verdicts = []
    for index, example in enumerate(examples):
        prompt, system_prompt = raw_prompts[index] if raw_prompts is not None else (example.text, None)
        verdict = screen_fn(prompt, system_prompt=system_prompt)
        verdicts.append(verdict)
        overall.add(example, verdict.allowed)
        for name in group_by:
            by[name][getattr(example, name)].add(example, verdict.allowed)
    return Report(overall, {name: dict(groups) for name, groups in by.items()}, verdicts)


def cross_validate(examples: Sequence[Example], inputs, key: Callable[[Example], str],
                   c: float, threshold: float) -> dict[str, Rates]:
    """Leave-one-group-out on the decision head: each group is scored by a head trained without it.

    `inputs` is the head's feature matrix (train.decision_features), one row per example.
    """
    from .train import fit_logistic

    labels = np.array([int(e.clinical) for e in examples])
    keys = np.array([key(e) for e in examples])
    results: dict[str, Rates] = {}
    for value in sorted(set(keys)):
        test = keys == value
        if len(set(labels[~test])) < 2:
            continue
        head = fit_logistic(inputs[~test], labels[~test], c)
        scores = head.decision_function(inputs[test])
        rates = Rates()
        for example, score in zip((e for e, t in zip(examples, test, strict=True) if t), scores, strict=True):
            rates.add(example, verdict_allowed=score < threshold)
        results[value] = rates
    return results


def pooled(results: dict[str, Rates]) -> Rates:
    total = Rates()
    for rates in results.values():
        total.clinical += rates.clinical
        total.caught += rates.caught
        total.allowed += rates.allowed
        total.refused += rates.refused
    return total
