"""Cog interface for MedGemma 4B-IT: declares the inputs and hands each request to medgemma/."""

import logging

import cog
from cog import BaseRunner, ConcatenateIterator, Input, Path

from medgemma import request as limits
from medgemma.config import ServiceConfig
from medgemma.images import ACCEPTED_DESCRIPTION, ACCEPTED_MEDIA, IMAGE_SIZE, IMAGE_TOKENS, uploaded, uploaded_all
from medgemma.loader import load_service
from medgemma.prompt import DEFAULT_SYSTEM_PROMPT
from medgemma.request import GenerationRequest
from medgemma.serving import concurrent, max_concurrency


class Runner(BaseRunner):
    def setup(self, weights: Path | None = None) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.service = load_service(ServiceConfig.from_env(weights=weights))

    @cog.streaming
    def run(
        self,
        prompt: str = Input(
            description="Question or instruction. For research, education and benchmarking only: requests "
            "for diagnosis, treatment, triage or dosing about a real person are refused. With images, "
            "<image> marks where each goes, in order (without markers, they follow the prompt).",
            max_length=limits.PROMPT_MAX_CHARS,
        ),
        image: Path | None = Input(
            default=None,
            description=f"Optional image ({ACCEPTED_DESCRIPTION}); resized to {IMAGE_SIZE}x"
            f"{IMAGE_SIZE} ({IMAGE_TOKENS} image tokens). For several, use images.",
            accept=ACCEPTED_MEDIA,
        ),
        images: list[Path] | None = Input(
            default=None,
            description=f"Several images (up to {limits.MAX_IMAGES}; same formats as image), in this order: "
            f"after the prompt, or at its <image> markers; each costs {IMAGE_TOKENS} tokens. Use either image "
            "or images.",
            accept=ACCEPTED_MEDIA,
        ),
        frame: int | None = Input(
            default=None,
            ge=0,
            le=limits.MAX_FRAME_INDEX,
            description="For multi-frame DICOM files: which frame to use, from 0. Left empty: the middle frame.",
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
        metrics = self.scope  # now: in a concurrent run, the generator below runs in another thread

        def answer():  # requests are checked and images read when streaming starts, off the event loop
            request = GenerationRequest(
                prompt=prompt,
                image=uploaded(image),  # only what the request carried, never a path on this server
                images=uploaded_all(images),
                frame=frame,
                system_prompt=system_prompt,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                seed=seed,
            )
            yield from self.service.stream(request, metrics=metrics)

        return answer()

    if max_concurrency() > 1:  # many predictions at once (see medgemma/serving.py for the trade-off)
        run = concurrent(run)
