"""Cog interface for MedGemma 4B-IT: declares the inputs and hands each request to medgemma/."""

import logging

import cog
from cog import BaseRunner, ConcatenateIterator, Input, Path

from medgemma import request as limits
from medgemma.config import ServiceConfig
from medgemma.loader import load_service
from medgemma.prompt import DEFAULT_SYSTEM_PROMPT
from medgemma.request import GenerationRequest


class Runner(BaseRunner):
    def setup(self, weights: Path | None = None) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.service = load_service(ServiceConfig.from_env(weights=weights))

    @cog.streaming
    def run(
        self,
        prompt: str = Input(
            description="Question or instruction. For research, education and benchmarking only: requests "
            "for diagnosis, treatment, triage or dosing about a real person are refused.",
            max_length=limits.PROMPT_MAX_CHARS,
        ),
        image: Path | None = Input(
            default=None,
            description="Optional image (PNG, JPEG, WebP, BMP, TIFF, GIF); resized to 896x896 (256 image tokens).",
            accept="image/*",
        ),
        system_prompt: str = Input(
            default=DEFAULT_SYSTEM_PROMPT,
            description="Sets the model's role. A fixed non-clinical instruction is always added after it.",
            max_length=limits.SYSTEM_PROMPT_MAX_CHARS,
        ),
        max_new_tokens: int = Input(
            default=limits.DEFAULT_MAX_NEW_TOKENS,
            ge=1,
            le=limits.MAX_NEW_TOKENS_LIMIT,
            description="Most tokens to generate (the answer may stop earlier).",
        ),
        temperature: float = Input(
            default=0.0,
            ge=0.0,
            le=limits.TEMPERATURE_MAX,
            description="0 decodes greedily (deterministic); above 0 samples, higher is more random.",
        ),
        top_p: float = Input(
            default=limits.DEFAULT_TOP_P,
            ge=limits.TOP_P_MIN,
            le=1.0,
            description="Nucleus sampling: keep the smallest set of tokens whose probability adds up to top_p. "
            "Used only when temperature > 0.",
        ),
        top_k: int = Input(
            default=limits.DEFAULT_TOP_K,
            ge=0,
            le=limits.TOP_K_MAX,
            description="Sample among the k most likely tokens (0 = no limit). Used only when temperature > 0.",
        ),
        seed: int | None = Input(
            default=None,
            ge=0,
            le=limits.SEED_MAX,
            description="Random seed for sampling, for reproducible outputs. Left empty, one is drawn and "
            "reported in the metrics.",
        ),
    ) -> ConcatenateIterator[str]:
        request = GenerationRequest(
            prompt=prompt,
            image=image,
            system_prompt=system_prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
        )
        answer = self.service.answer(request)
        yield from answer
        for name, value in answer.metrics().items():
            self.record_metric(name, value)
