"""The guarded service: screen the request, generate (or refuse), append the disclaimer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import guard, policy
from .demo import DEMO_NOTICE
from .engine import Generation, TextEngine
from .errors import UserError
from .request import GenerationRequest
from .weights import ResolvedWeights

logger = logging.getLogger(__name__)

Screen = Callable[..., guard.Verdict]


class ServiceError(RuntimeError):
    """An internal failure, already logged; its message is safe to show."""


@dataclass
class Answer:
    """One prediction's output: iterate for text; read `metrics()` after the last piece."""

    verdict: guard.Verdict
    pieces: Iterator[str]
    generation: Generation | None = None
    model_name: str = ""
    extra_metrics: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[str]:
        return self.pieces

    def metrics(self) -> dict[str, Any]:
        """Flat metric names (dots nest them in Cog's JSON) to values."""
        metrics: dict[str, Any] = {
            "guard.allowed": self.verdict.allowed,
            "guard.category": self.verdict.category,
            "model": self.model_name,
        }
        if self.generation is not None:
            metrics.update(self.generation.stats.as_metrics())
        return metrics


class Service:
    """The one place requests go through, whatever the entry point (Cog, CLI, tests)."""

    def __init__(self, engine: TextEngine, *, weights: ResolvedWeights | None = None,
                 screen: Screen = guard.screen):
        self.engine = engine
        self.weights = weights
        self._screen = screen
        self.demo_notice = DEMO_NOTICE if weights is not None and weights.is_demo else None
        self.model_name = weights.path.name if weights is not None else "unknown"

    def answer(self, request: GenerationRequest, stop: threading.Event | None = None) -> Answer:
        verdict = self.screen(request)
        if not verdict.allowed:
            text = policy.refusal(verdict.reason, emergency=verdict.emergency)
            return Answer(verdict=verdict, pieces=iter([text]), model_name=self.model_name)
        with _internal_errors():
            generation = self.engine.generate(request, stop)
        return Answer(
            verdict=verdict,
            pieces=self._with_footer(generation),
            generation=generation,
            model_name=self.model_name,
        )

    def screen(self, request: GenerationRequest) -> guard.Verdict:
        """The guard's verdict; a guard that fails refuses (fail closed)."""
        try:
            return self._screen(request.prompt, system_prompt=request.system_prompt,
                                has_image=request.image is not None)
        except Exception as error:  # noqa: BLE001 - any guard failure must refuse
            logger.error("guard failed with %s; refusing the request", type(error).__name__)
            return guard.Verdict(
                allowed=False,
                category=guard.GUARD_ERROR,
                reason="the safety check could not run, so the request was refused.",
            )

    def _with_footer(self, generation: Generation) -> Iterator[str]:
        with _internal_errors():
            yield from generation
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
