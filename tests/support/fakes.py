"""Fakes that implement our interfaces (not patches of modules)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from medgemma.engine import Generation, GenerationStats
from medgemma.guard import ALLOWED_EDUCATION, REASONS, Verdict
from medgemma.request import GenerationRequest


class FakeEngine:
    """A TextEngine that replays queued pieces and records every request it got."""

    def __init__(self, pieces: list[str] | None = None, *, fail_after: int | None = None,
                 error: Exception | None = None):
        self.pieces = pieces if pieces is not None else ["Hello", " world"]
        self.fail_after = fail_after
        self.error = error or RuntimeError("boom")
        self.requests: list[GenerationRequest] = []
        self.announced = self.arrived = 0

    def announce(self):
        self.announced += 1
        return self._arrived

    def _arrived(self) -> None:
        self.arrived += 1

    def generate(self, request: GenerationRequest, stop: threading.Event | None = None,
                 arrived=None) -> Generation:
        if arrived is not None:
            arrived()
        self.requests.append(request)
        stats = GenerationStats(input_tokens=7, max_new_tokens=request.max_new_tokens)
        return Generation(pieces=self._run(stats), stats=stats)

    def _run(self, stats: GenerationStats) -> Iterator[str]:
        for index, piece in enumerate(self.pieces):
            if self.fail_after is not None and index == self.fail_after:
                raise self.error
            stats.output_tokens += 1
            yield piece


class FakeGuard:
    """A guard `screen` that returns a fixed verdict and records what it was asked."""

    def __init__(self, verdict: Verdict | None = None, *, seconds: float = 0.0):
        self.verdict = verdict or Verdict(True, ALLOWED_EDUCATION, REASONS[ALLOWED_EDUCATION], score=0.1, language="en")
        self.seconds = seconds  # how long screening takes, as the real guard's embedding does
        self.calls: list[tuple[str, str | None, bool]] = []

    def __call__(self, prompt: str, *, system_prompt: str | None = None, has_image: bool = False) -> Verdict:
        self.calls.append((prompt, system_prompt, has_image))
        time.sleep(self.seconds)
        return self.verdict


def refusing(category: str, language: str = "en") -> FakeGuard:
    return FakeGuard(Verdict(False, category, REASONS[category], score=0.9, language=language))

