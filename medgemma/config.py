"""Service settings, read from the environment once, at the edge (setup or CLI start)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS_ROOT = REPO_ROOT / "weights"

ENV_WEIGHTS = "MEDGEMMA_WEIGHTS"
ENV_STRICT = "MEDGEMMA_STRICT"
ENV_DEVICE = "MEDGEMMA_DEVICE"
ENV_WEIGHTS_ROOT = "MEDGEMMA_WEIGHTS_ROOT"
ENV_MAX_BATCH = "MEDGEMMA_MAX_BATCH"
ENV_CONTEXT_TOKENS = "MEDGEMMA_CONTEXT_TOKENS"
ENV_KV_CACHE_TOKENS = "MEDGEMMA_KV_CACHE_TOKENS"
ENV_CONTINUOUS = "MEDGEMMA_CONTINUOUS_BATCHING"
ENV_COMPILE = "MEDGEMMA_COMPILE"
ENV_MAX_SECONDS = "MEDGEMMA_MAX_SECONDS"
ENV_WARM_UP = "MEDGEMMA_WARM_UP"

DEVICES = ("auto", "cuda", "cpu")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class EngineSettings:
    """How the engine serves (see engine.py and batching.py)."""

    max_batch: int = 8  # requests sharing one forward pass
    context_tokens: int = 8192  # prompt + answer, at most (and the static cache's length)
    kv_cache_tokens: int | None = None  # None: from the memory free after loading
    memory_fraction: float = 0.8  # of that free memory, for the KV cache
    # Greedy text through transformers' continuous batching: a request joins the running batch at
    # the next step (README.md, "Serving").
    continuous: bool = True
    compile: bool | None = None  # lone requests decode compiled with a static cache; None: on CUDA only
    max_seconds: float = 600.0  # a prediction's deadline: the cap on a run nobody can cancel
    warm_up: bool = True  # decode once on every path at setup

    def __post_init__(self) -> None:
        for name in ("max_batch", "context_tokens", "kv_cache_tokens", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive; got {value}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EngineSettings:
        def number(name: str, kind, default):
            raw = env.get(name, "").strip()
            try:
                return kind(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name} must be a number; got {raw!r}") from None

        compile_raw = env.get(ENV_COMPILE, "auto").strip().lower()
        return cls(
            max_batch=number(ENV_MAX_BATCH, int, cls.max_batch),
            context_tokens=number(ENV_CONTEXT_TOKENS, int, cls.context_tokens),
            kv_cache_tokens=number(ENV_KV_CACHE_TOKENS, int, None),
            continuous=_parse_bool(ENV_CONTINUOUS, env.get(ENV_CONTINUOUS, "1")),
            compile=None if compile_raw in ("", "auto") else _parse_bool(ENV_COMPILE, compile_raw),
            max_seconds=number(ENV_MAX_SECONDS, float, cls.max_seconds),
            warm_up=_parse_bool(ENV_WARM_UP, env.get(ENV_WARM_UP, "1")),
        )


@dataclass(frozen=True)
class ServiceConfig:
    """Where weights come from, whether the demo model is allowed, and where to run.

    strict: production mode. Only real MedGemma weights are served; a missing or broken
    weights directory fails setup instead of falling back to the demo model.
    """

    weights_path: Path | None = None
    weights_root: Path = DEFAULT_WEIGHTS_ROOT
    strict: bool = False
    device: str = "auto"
    engine: EngineSettings = field(default_factory=EngineSettings)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"{ENV_DEVICE} must be one of {', '.join(DEVICES)}; got {self.device!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, weights: str | Path | None = None) -> ServiceConfig:
        env = os.environ if environ is None else environ
        explicit = weights if weights not in (None, "") else env.get(ENV_WEIGHTS) or None
        return cls(
            weights_path=Path(explicit) if explicit is not None else None,
            weights_root=Path(env.get(ENV_WEIGHTS_ROOT) or DEFAULT_WEIGHTS_ROOT),
            strict=_parse_bool(ENV_STRICT, env.get(ENV_STRICT, "")),
            device=(env.get(ENV_DEVICE) or "auto").lower(),
            engine=EngineSettings.from_env(env),
        )


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be 1 or 0; got {value!r}")
