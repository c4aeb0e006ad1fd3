"""The typed request every entry point (Cog, CLI, tests) builds and the core validates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .prompt import DEFAULT_SYSTEM_PROMPT

# Limits shared by predict.py's Input(...) declarations and this validation, so the
# server and the core can never disagree about what is allowed.
PROMPT_MAX_CHARS = 32_000
SYSTEM_PROMPT_MAX_CHARS = 8_000
MAX_NEW_TOKENS_LIMIT = 4096
DEFAULT_MAX_NEW_TOKENS = 512
TEMPERATURE_MAX = 2.0
DEFAULT_TOP_P = 0.95
TOP_P_MIN = 0.01
DEFAULT_TOP_K = 64
TOP_K_MAX = 1000
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class GenerationRequest:
    """One prediction's inputs. `temperature == 0` means greedy decoding."""

    prompt: str
    image: Path | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise UserError("prompt is empty: write the question or instruction for the model.")
        if len(self.prompt) > PROMPT_MAX_CHARS:
            raise UserError(
                f"prompt has {len(self.prompt)} characters; the limit is {PROMPT_MAX_CHARS}. Shorten it."
            )
        if len(self.system_prompt or "") > SYSTEM_PROMPT_MAX_CHARS:
            raise UserError(
                f"system_prompt has {len(self.system_prompt)} characters; the limit is "
                f"{SYSTEM_PROMPT_MAX_CHARS}. Shorten it."
            )
        _check_range("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS_LIMIT, integer=True)
        _check_range("temperature", self.temperature, 0.0, TEMPERATURE_MAX)
        _check_range("top_p", self.top_p, TOP_P_MIN, 1.0)
        _check_range("top_k", self.top_k, 0, TOP_K_MAX, integer=True)
        if self.seed is not None:
            _check_range("seed", self.seed, 0, SEED_MAX, integer=True)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _check_range(name: str, value: object, low: float, high: float, *, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid_type or (isinstance(value, float) and not math.isfinite(value)):
        raise UserError(f"{name} must be {kind} between {low} and {high}; got {value!r}.")
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low} and {high}; got {value}.")
