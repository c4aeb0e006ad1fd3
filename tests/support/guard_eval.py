"""Scoring medgemma.guard.screen on the labelled set in tests/data/guard_eval.jsonl."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from medgemma.guard import screen

EVAL_SET = Path(__file__).resolve().parent.parent / "data" / "guard_eval.jsonl"


def load_rows(split: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if split is None or row["split"] == split]


@dataclass
class Report:
    clinical: int = 0
    allowed: int = 0
    missed: list[dict] = field(default_factory=list)  # clinical requests let through
    false_refusals: list[dict] = field(default_factory=list)  # allowed requests refused

    @property
    def recall(self) -> float:
        return 1 - len(self.missed) / self.clinical if self.clinical else 1.0

    @property
    def false_refusal_rate(self) -> float:
        return len(self.false_refusals) / self.allowed if self.allowed else 0.0


def evaluate(rows: list[dict]) -> Report:
    report = Report()
    for row in rows:
        verdict = screen(row["prompt"], system_prompt=row.get("system_prompt"), has_image=row["has_image"])
        if row["label"] == "refuse":
            report.clinical += 1
            if verdict.allowed:
                report.missed.append({**row, "got": verdict.category})
        else:
            report.allowed += 1
            if not verdict.allowed:
                report.false_refusals.append({**row, "got": verdict.category})
    return report


def latencies_ms(rows: list[dict], repeats: int = 20) -> list[float]:
    timings = []
    for _ in range(repeats):
        for row in rows:
            started = time.perf_counter()
            screen(row["prompt"], has_image=row["has_image"])
            timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)
