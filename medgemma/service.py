"""The guarded service: screen the request, generate (or refuse), append the disclaimer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import guard, policy
from .engine import Generation, TextEngine
from .errors import UserError
from .request import GenerationRequest
from .weights import ResolvedWeights

logger = logging.getLogger(__name__)

Screen = Callable[..., guard.Verdict]


class MetricsSink(Protocol):
    """Where a prediction's metrics go (Cog's prediction scope)."""

    def record_metric(self, key: str, value: Any) -> None: ...


class ServiceError(RuntimeError):
    """An internal failure, already logged; its message is safe to show."""


@dataclass
class Answer:
    """One prediction's output: iterate for text.

    `verdict_metrics()` are known before the first piece; `metrics()` adds what generation
    measured so far, and is complete after the last piece, a cancel or a failure alike.
    """

    verdict: guard.Verdict
    pieces: Iterator[str] = field(default_factory=lambda: iter(()))
    generation: Generation | None = None
    model_name: str = ""
    image_count: int = 0

    def __iter__(self) -> Iterator[str]:
        return self.pieces

    def verdict_metrics(self) -> dict[str, Any]:
        """Flat metric names (dots nest them in Cog's JSON) to values."""
        metrics: dict[str, Any] = {
            "guard.allowed": self.verdict.allowed,
            "guard.category": self.verdict.category,
            "model": self.model_name,
            "image_count": self.image_count,
        }
        if self.verdict.score is not None:
            metrics["guard.score"] = round(self.verdict.score, 4)
        return metrics

    def generation_metrics(self) -> dict[str, Any]:
        return self.generation.stats.as_metrics() if self.generation is not None else {}

    def metrics(self) -> dict[str, Any]:
        return {**self.verdict_metrics(), **self.generation_metrics()}


class Service:
    """The one place requests go through, whatever the entry point (Cog, CLI, tests)."""

    def __init__(self, engine: TextEngine, *, weights: ResolvedWeights | None = None,
                 screen: Screen = guard.screen):
        self.engine = engine
        self.weights = weights
        self._screen = screen
        self.demo_notice = policy.DEMO_NOTICE if weights is not None and weights.is_demo else None
        self.model_name = weights.path.name if weights is not None else "unknown"

    def answer(self, request: GenerationRequest, stop: threading.Event | None = None) -> Answer:
        arrived = self.engine.announce()  # requests screened at the same moment can share a batch
        verdict = self.screen(request)
        answer = Answer(verdict=verdict, model_name=self.model_name, image_count=len(request.images))
        if verdict.allowed:
            answer.pieces = self._generate(request, stop, answer, arrived)
        else:
            arrived()
            answer.pieces = iter([policy.refusal(language=verdict.language, emergency=verdict.emergency)])
        return answer

    def stream(self, request: GenerationRequest, *, metrics: MetricsSink,
               stop: threading.Event | None = None) -> Iterator[str]:
        """The answer's pieces; the guard's verdict is recorded before the first piece, and what
        generation measured after the last one, or on a cancel or failure."""
        answer = self.answer(request, stop)
        for name, value in answer.verdict_metrics().items():
            metrics.record_metric(name, value)
        try:
            yield from answer
        finally:
            for name, value in answer.generation_metrics().items():
                metrics.record_metric(name, value)

    def close(self) -> None:
        """Stop the engine's threads (the continuous batching manager's would keep a process alive)."""
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def screen(self, request: GenerationRequest) -> guard.Verdict:
        """The guard's verdict; a guard that fails refuses (fail closed)."""
        try:
            return self._screen(request.prompt, system_prompt=request.system_prompt,
                                has_image=bool(request.images))
        except Exception as error:  # noqa: BLE001 - any guard failure must refuse
            logger.error("guard failed with %s; refusing the request", type(error).__name__)
            return guard.Verdict(allowed=False, category=guard.GUARD_ERROR, reason=guard.REASONS[guard.GUARD_ERROR])

    def _generate(self, request: GenerationRequest, stop: threading.Event | None, answer: Answer,
                  arrived: Callable[[], None]) -> Iterator[str]:
        """Generation starts at the first piece read, so the verdict is known (and reported) first."""
        with _internal_errors():
            answer.generation = self.engine.generate(request, stop, arrived)
            yield from answer.generation
        yield policy.footer(demo_notice=self.demo_notice)


@contextmanager
def _internal_errors():
    """User errors pass through; anything else is logged with its traceback and masked."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        logger.exception("generation failed (%s)", type(error).__name__)
        raise ServiceError("generation failed with an internal error (logged); please retry.") from None
