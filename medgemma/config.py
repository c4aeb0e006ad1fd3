"""Service settings, read from the environment once, at the edge (setup or CLI start)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS_ROOT = REPO_ROOT / "weights"

ENV_WEIGHTS = "MEDGEMMA_WEIGHTS"
ENV_STRICT = "MEDGEMMA_STRICT"
ENV_DEVICE = "MEDGEMMA_DEVICE"
ENV_WEIGHTS_ROOT = "MEDGEMMA_WEIGHTS_ROOT"

DEVICES = ("auto", "cuda", "cpu")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


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
        )


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be 1 or 0; got {value!r}")
