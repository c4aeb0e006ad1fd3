"""Generation: prompt + images in, streamed text out, with per-request stats.

`Engine.generate` prepares a request in the caller's thread (tokenizing, image preprocessing: CPU
work that runs in parallel across requests), then hands it to the scheduler, which decodes it
with whatever else is in flight (see batching.py). Any number of threads may call it at once.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .batching import Continuous, Job, KvBudget, Sampling, Scheduler, kv_bytes_per_token, serialize_forward
from .config import EngineSettings
from .errors import UserError
from .images import load_image
from .inputs import Tokenizer, model_inputs
from .prompt import END_OF_TURN, chat_segments
from .request import GenerationRequest
from .streaming import TokenSink

logger = logging.getLogger(__name__)


@dataclass
class GenerationStats:
    """What one generation measured; complete once its text has been read, canceled or failed."""

    input_tokens: int = 0
    output_tokens: int = 0
    max_new_tokens: int = 0
    time_to_first_token: float | None = None  # seconds from the request to the first token
    decode_tokens_per_second: float | None = None  # after the first token
    queue_seconds: float | None = None  # waiting for room before reaching the model
    batch_size: int | None = None  # requests that shared its forward passes (0: continuous batching)
    total_seconds: float = 0.0
    finish_reason: str = "stop"  # stop | length | canceled | deadline
    seed: int | None = None

    def as_metrics(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "input_token_count": self.input_tokens,
            "output_token_count": self.output_tokens,
            "finish_reason": self.finish_reason,
        }
        optional = {"time_to_first_token": (self.time_to_first_token, 4),
                    "tokens_per_second": (self.decode_tokens_per_second, 2),
                    "queue_time": (self.queue_seconds, 4)}
        for name, (value, digits) in optional.items():
            if value is not None:
                metrics[name] = round(value, digits)
        if self.batch_size is not None:
            metrics["batch_size"] = self.batch_size
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

    def announce(self) -> Callable[[], None]:
        """A request is on its way (being screened): returns what to call when it is submitted or dropped."""
        ...

    def generate(self, request: GenerationRequest, stop: threading.Event | None = None,
                 arrived: Callable[[], None] | None = None) -> Generation: ...


def stop_token_ids(generation_config, tokenizer) -> frozenset[int]:
    """End of sequence as the checkpoint declares it, plus Gemma's end-of-turn token, always."""
    eos = generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        ids.add(end_of_turn)
    return frozenset(ids)


def kv_cache_tokens(model, device: str, settings: EngineSettings) -> int:
    """How many tokens of KV cache fit in the memory left after loading the model (no more than a
    full batch of full-length requests can use)."""
    if settings.kv_cache_tokens is not None:
        return settings.kv_cache_tokens
    most_useful = settings.max_batch * settings.context_tokens * (2 if settings.continuous else 1)
    per_token = kv_bytes_per_token(model.config.get_text_config(), model.dtype.itemsize)
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
    else:
        free = _available_ram()
    return max(settings.context_tokens, min(most_useful, int(free * settings.memory_fraction) // per_token))


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


CPU_CONTINUOUS_TOKENS = 16_384  # KV tokens for continuous batching on a CPU (8 requests of 2,048)


class Engine:
    """A loaded Gemma 3 model and processor, serving any number of concurrent requests."""

    def __init__(self, model, processor, *, device: str, settings: EngineSettings | None = None):
        self.model = model
        self.processor = processor
        self.device = device
        self.settings = settings or EngineSettings()
        self.tokenizer = processor.tokenizer
        self.tokens = Tokenizer.from_processor(processor)
        self.stop_ids = stop_token_ids(model.generation_config, self.tokenizer)
        self.max_context = min(self.settings.context_tokens,
                               model.config.get_text_config().max_position_embeddings)
        capacity = kv_cache_tokens(model, device, self.settings)
        compiled = self.settings.compile if self.settings.compile is not None else device == "cuda"
        continuous = None
        self.forward_lock: threading.Lock | None = None  # held by each forward pass when two paths share the model
        if self.settings.continuous:
            self.forward_lock = serialize_forward(model)
            half = capacity // 2  # the other half is the continuous batching manager's own cache
            # The manager's paged attention on CPU keeps per-token buffers several times the cache
            # itself (measured: ~140 KB a token on the demo model): keep it modest there.
            managed = min(half, CPU_CONTINUOUS_TOKENS) if device == "cpu" else half
            try:
                continuous = Continuous(model, stop_ids=self.stop_ids, budget_tokens=managed,
                                        max_batch=self.settings.max_batch)
                capacity = half
            except Exception:  # a speed-up, not a requirement: every request can run batched instead
                logger.exception("continuous batching could not start; greedy text requests run batched")
        self.scheduler = Scheduler(
            model, stop_ids=self.stop_ids, pad_id=self._pad_id(), budget=KvBudget(capacity),
            max_batch=self.settings.max_batch, static_cache_len=self.max_context if compiled else None,
            continuous=continuous,
        )
        logger.info("engine: KV cache for %d tokens, batches of up to %d, continuous batching %s, compiled %s",
                    capacity, self.settings.max_batch, "on" if continuous else "off", "on" if compiled else "off")

    def _pad_id(self) -> int:
        pad = self.model.generation_config.pad_token_id
        return int(pad if pad is not None else self.tokenizer.pad_token_id or 0)

    def prepare(self, request: GenerationRequest) -> dict[str, Any]:
        """Model inputs for a request: prompt rendered and tokenized, images loaded and processed
        together (one pass of the image processor), in the order they were sent."""
        images = []
        for number, source in enumerate(request.images, start=1):
            try:
                images.append(load_image(source, frame=request.frame))
            except UserError as error:
                if len(request.images) == 1:
                    raise
                raise UserError(f"image {number} of {len(request.images)}: {error}") from None
        segments = chat_segments(request.prompt, system_prompt=request.system_prompt, image_count=len(images))
        return model_inputs(self.tokens.encode(segments), images, self.tokens, self.processor.image_processor)

    def announce(self) -> Callable[[], None]:
        return self.scheduler.announce()

    def generate(self, request: GenerationRequest, stop: threading.Event | None = None,
                 arrived: Callable[[], None] | None = None) -> Generation:
        """The request's generation, started when first read. `arrived` (from `announce`) is called
        once it is submitted, or fails before, or is never read."""
        stats = GenerationStats()
        pieces = self._run(request, stop or threading.Event(), stats, arrived or (lambda: None))
        if arrived is not None:
            weakref.finalize(pieces, arrived)  # a generation nobody reads never holds a batch back
        return Generation(pieces=pieces, stats=stats)

    def _run(self, request: GenerationRequest, stop: threading.Event, stats: GenerationStats,
             arrived: Callable[[], None]) -> Iterator[str]:
        started = time.perf_counter()
        try:
            job = self._submit(request, stop, stats)
        finally:
            arrived()  # submitted, or refused before: either way, no batch waits for it any longer
        try:
            yield from job.sink.pieces()
        finally:
            # Reached on normal end, on an error, and when the reader is closed or canceled: the
            # request stops (its sink is done) and the stats say how far it got.
            stop.set()
            _ = job.sink.done
            self._record(stats, job, started)

    def _submit(self, request: GenerationRequest, stop: threading.Event, stats: GenerationStats) -> Job:
        inputs = self.prepare(request)
        stats.input_tokens = int(inputs["input_ids"].shape[1])
        room = self.max_context - stats.input_tokens
        if room < 1:
            raise UserError(f"the prompt is {stats.input_tokens} tokens; the model's context here holds "
                            f"{self.max_context}. Shorten it.")
        stats.max_new_tokens = min(request.max_new_tokens, room)
        stats.seed = request.seed if not request.greedy else None
        sink = TokenSink(self.tokenizer, stop_ids=self.stop_ids, max_new_tokens=stats.max_new_tokens, stop=stop,
                         deadline=time.monotonic() + self.settings.max_seconds)
        sampling = Sampling() if request.greedy else Sampling(request.temperature, request.top_p, request.top_k)
        job = Job(inputs=inputs, sampling=sampling, seed=stats.seed, sink=sink)
        self.scheduler.submit(job)
        return job

    @staticmethod
    def _record(stats: GenerationStats, job: Job, started: float) -> None:
        sink = job.sink
        ended = sink.finished_at or time.perf_counter()
        stats.output_tokens = len(sink.token_ids)
        stats.total_seconds = ended - started
        stats.finish_reason = sink.finish_reason if sink.finish_reason in ("stop", "length", "deadline") else "canceled"
        if job.started_at is not None:
            stats.queue_seconds = max(0.0, job.started_at - job.submitted_at)
            stats.batch_size = job.batch_size
        if sink.first_token_at is not None:
            stats.time_to_first_token = sink.first_token_at - started
            decode_seconds = ended - sink.first_token_at
            if len(sink.token_ids) > 1 and decode_seconds > 0:
                stats.decode_tokens_per_second = (len(sink.token_ids) - 1) / decode_seconds

    def warm_up(self) -> None:
        """Decode a text, an image and a long prompt on every path once, so that no request after
        READY pays for compiling a graph or allocating a cache."""
        from PIL import Image

        long_prompt = "Summarise the history of medicine. " * 200  # past Gemma 3's 1,024-token sliding window
        requests = [GenerationRequest(prompt="Say hello.", max_new_tokens=4),
                    GenerationRequest(prompt="Describe the image.", image=_png(Image.new("RGB", (64, 64))),
                                      max_new_tokens=4),
                    GenerationRequest(prompt=long_prompt, max_new_tokens=4)]
        for request in requests:
            inputs = self.prepare(request)
            if int(inputs["input_ids"].shape[1]) + 4 > self.max_context:
                continue
            for alone in (True, False):  # the lone (compiled) path, then the request's usual one
                self._decode_once(inputs, self.scheduler.submit, alone=alone)
            continuous = self.scheduler.continuous
            if continuous is not None and self.scheduler.static_cache_len is not None and "pixel_values" not in inputs:
                self._decode_once(inputs, continuous.submit)  # the idle model took this text alone above

    def _decode_once(self, inputs: dict[str, Any], submit: Callable[[Job], bool | None], *,
                     alone: bool = False) -> None:
        sink = TokenSink(self.tokenizer, stop_ids=self.stop_ids, max_new_tokens=4)
        if submit(Job(inputs=inputs, sampling=Sampling(), seed=None, sink=sink, alone=alone)) is False:
            return  # refused (continuous batching stopped): nothing to warm
        for _ in sink.pieces():
            pass

    def close(self) -> None:
        self.scheduler.close()


def _png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
