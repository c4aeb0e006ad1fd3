"""Generation: prompt + image in, streamed text out, with a stop flag and per-request stats."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import UserError
from .images import load_image
from .prompt import build_messages, render_gemma3
from .request import GenerationRequest

logger = logging.getLogger(__name__)


@dataclass
class GenerationStats:
    """What one generation measured; complete once its text has been read to the end."""

    input_tokens: int = 0
    output_tokens: int = 0
    max_new_tokens: int = 0
    time_to_first_token: float | None = None  # seconds from the request to the first token
    decode_tokens_per_second: float | None = None  # after the first token
    total_seconds: float = 0.0
    finish_reason: str = "stop"  # stop | length | canceled
    seed: int | None = None

    def as_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "input_token_count": self.input_tokens,
            "output_token_count": self.output_tokens,
            "finish_reason": self.finish_reason,
        }
        if self.time_to_first_token is not None:
            metrics["time_to_first_token"] = round(self.time_to_first_token, 4)
        if self.decode_tokens_per_second is not None:
            metrics["tokens_per_second"] = round(self.decode_tokens_per_second, 2)
        if self.seed is not None:
            metrics["seed"] = self.seed
        return metrics


@dataclass
class Generation:
    """An answer being generated: iterate for text pieces; `stats` fills in as it runs."""

    pieces: Iterator[str]
    stats: GenerationStats = field(default_factory=GenerationStats)

    def __iter__(self) -> Iterator[str]:
        return self.pieces


class TextEngine(Protocol):
    """What the service needs from a model; tests use fakes that implement it."""

    def generate(self, request: GenerationRequest, stop: threading.Event | None = None) -> Generation: ...


class Engine:
    """Runs a loaded Gemma 3 model and processor for one request at a time."""

    def __init__(self, model, processor, *, device: str):
        self.model = model
        self.processor = processor
        self.device = device
        self.tokenizer = processor.tokenizer
        self.max_context = model.config.get_text_config().max_position_embeddings
        self._lock = threading.Lock()

    def prepare(self, request: GenerationRequest) -> dict[str, Any]:
        """Model inputs for a request: prompt rendered, image loaded and processed (pure CPU work)."""
        image = load_image(request.image) if request.image is not None else None
        messages = build_messages(request.prompt, system_prompt=request.system_prompt, has_image=image is not None)
        if self.processor.chat_template:
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text = render_gemma3(messages)
        # The rendered prompt already starts with <bos>; the tokenizer must not add another.
        inputs = self.processor(
            text=text, images=[image] if image is not None else None, add_special_tokens=False, return_tensors="pt"
        )
        return dict(inputs)

    def generate(self, request: GenerationRequest, stop: threading.Event | None = None) -> Generation:
        started = time.perf_counter()
        inputs = self.prepare(request)
        input_tokens = int(inputs["input_ids"].shape[1])
        room = self.max_context - input_tokens
        if room < 1:
            raise UserError(
                f"the prompt is {input_tokens} tokens; the model's context holds {self.max_context}. Shorten it."
            )
        stats = GenerationStats(input_tokens=input_tokens, max_new_tokens=min(request.max_new_tokens, room))
        if not request.greedy:
            stats.seed = request.seed if request.seed is not None else random.randrange(2**32)
        stop = stop or threading.Event()
        return Generation(pieces=self._stream(inputs, request, stats, stop, started), stats=stats)

    def generation_config(self, request: GenerationRequest, max_new_tokens: int):
        """The decoding settings for a request: greedy unless temperature > 0."""
        from transformers import GenerationConfig

        defaults = self.model.generation_config
        settings: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "eos_token_id": defaults.eos_token_id,
            "pad_token_id": defaults.pad_token_id,
            "bos_token_id": defaults.bos_token_id,
        }
        if request.greedy:
            settings["do_sample"] = False
        else:
            settings.update(do_sample=True, temperature=request.temperature, top_p=request.top_p,
                            top_k=request.top_k or None)
        return GenerationConfig(**settings)

    def _stream(self, inputs, request, stats: GenerationStats, stop: threading.Event, started: float):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        from .streaming import TextPieceStreamer

        class _StopFlag(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        streamer = TextPieceStreamer(self.tokenizer)
        failure: list[BaseException] = []
        model_inputs = {key: value.to(self.device) for key, value in inputs.items()}
        if "pixel_values" in model_inputs:
            model_inputs["pixel_values"] = model_inputs["pixel_values"].to(self.model.dtype)

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        **model_inputs,
                        generation_config=self.generation_config(request, stats.max_new_tokens),
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_StopFlag()]),
                    )
            except BaseException as error:  # handed to the reader, which re-raises it
                failure.append(error)
                streamer.fail()

        with self._lock:
            if stats.seed is not None:
                torch.manual_seed(stats.seed)
            worker = threading.Thread(target=run, name="medgemma-generate", daemon=True)
            worker.start()
            read_to_end = False
            try:
                yield from streamer.pieces()
                read_to_end = True
            finally:
                # Reached on normal end, on an error, and when the reader is closed or
                # canceled: in every case generation must stop, not run on unseen.
                canceled = stop.is_set() or not read_to_end
                stop.set()
                worker.join()
                self._finish(stats, streamer, canceled=canceled, started=started)
        if failure:
            raise failure[0]

    def _finish(self, stats: GenerationStats, streamer, *, canceled: bool, started: float) -> None:
        ended = time.perf_counter()
        ids = streamer.token_ids
        stats.output_tokens = len(ids)
        stats.total_seconds = ended - started
        if streamer.first_token_at is not None:
            stats.time_to_first_token = streamer.first_token_at - started
            decode_seconds = ended - streamer.first_token_at
            if len(ids) > 1 and decode_seconds > 0:
                stats.decode_tokens_per_second = (len(ids) - 1) / decode_seconds
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        if ids and ids[-1] in eos_ids:
            stats.finish_reason = "stop"
            stats.output_tokens -= 1  # the end-of-turn marker is not part of the answer
        elif canceled and len(ids) < stats.max_new_tokens:
            stats.finish_reason = "canceled"
        else:
            stats.finish_reason = "length"
