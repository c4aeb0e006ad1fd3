"""The typed request every entry point (Cog, CLI, tests) builds and the core validates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .prompt import DEFAULT_SYSTEM_PROMPT, IMAGE_MARKER, image_markers

# Limits shared by predict.py's Input(...) declarations and this validation, so the
# server and the core can never disagree about what is allowed.
PROMPT_MAX_CHARS = 32_000
SYSTEM_PROMPT_MAX_CHARS = 8_000
MAX_NEW_TOKENS_LIMIT = 4096
DEFAULT_MAX_NEW_TOKENS = 512
TEMPERATURE_MAX = 2.0
# Below this, sampling is greedy in all but name, and dividing logits by a tiny temperature
# overflows to inf and NaN: such requests decode greedily.
MIN_SAMPLING_TEMPERATURE = 0.01
DEFAULT_TOP_P = 0.95
TOP_P_MIN = 0.01
DEFAULT_TOP_K = 64
TOP_K_MAX = 1000
SEED_MAX = 2**32 - 1
# Images per prompt: each costs IMAGE_TOKENS (256) of the context, so 8 take 2,048 tokens and leave
# room for a long prompt and answer in the 8,192-token context the service runs with.
MAX_IMAGES = 8
MAX_FRAME_INDEX = 65_535  # DICOM's Number of Frames fits in this; the file says how many it really has


@dataclass(frozen=True)
class GenerationRequest:
    """One prediction's inputs. A temperature under MIN_SAMPLING_TEMPERATURE means greedy decoding."""

    prompt: str
    image: Path | bytes | None = None  # a local file (CLI) or the bytes an HTTP request carried
    images: tuple[Path | bytes, ...] = ()  # several, in the order they go into the user turn
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = DEFAULT_TOP_P
    top_k: int = DEFAULT_TOP_K
    seed: int | None = None
    frame: int | None = None  # which frame of a multi-frame DICOM file; None: the middle one

    def __post_init__(self) -> None:
        if self.image is not None and tuple(self.images or ()) not in ((), (self.image,)):
            raise UserError("send either image (one) or images (several), not both; put every image in images.")
        if self.image is not None:
            object.__setattr__(self, "images", (self.image,))
        object.__setattr__(self, "images", tuple(self.images or ()))
        if len(self.images) > MAX_IMAGES:
            raise UserError(f"{len(self.images)} images were sent; the limit is {MAX_IMAGES} per prompt "
                            f"(each takes 256 tokens of the context). Send fewer images.")
        for name in ("max_new_tokens", "top_k", "seed", "frame"):
            # JSON has one number type: 16.0 is the integer 16 (the server's schema agrees).
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                object.__setattr__(self, name, int(value))
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise UserError("prompt is empty: write the question or instruction for the model.")
        if len(self.prompt) > PROMPT_MAX_CHARS:
            raise UserError(
                f"prompt has {len(self.prompt)} characters; the limit is {PROMPT_MAX_CHARS}. Shorten it."
            )
        markers = image_markers(self.prompt)
        if self.images and markers not in (0, len(self.images)):
            raise UserError(f"the prompt has {markers} {IMAGE_MARKER} marker(s) for {len(self.images)} image(s): "
                            f"write one {IMAGE_MARKER} where each image goes, in order, or none to have the "
                            "images follow the prompt.")
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
        if self.frame is not None:
            _check_range("frame", self.frame, 0, MAX_FRAME_INDEX, integer=True)

    @property
    def greedy(self) -> bool:
        return self.temperature < MIN_SAMPLING_TEMPERATURE


def _check_range(name: str, value: object, low: float, high: float, *, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid_type or (isinstance(value, float) and not math.isfinite(value)):
        raise UserError(f"{name} must be {kind} between {low} and {high}; got {value!r}.")
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low} and {high}; got {value}.")
