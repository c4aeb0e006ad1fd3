"""Running requests on the model: together when they can share forward passes, alone when they must.

Three paths, one owner thread each:
- *continuous*: greedy text requests go to transformers' continuous batching manager, where a new
  request joins the running batch at the next step (its own thread);
- *batched*: requests with images, or that sample, are grouped with the others waiting for the
  same settings and run as one left-padded `generate` (all their images in one vision-tower pass);
- *alone*: a request with a fixed seed (its random draws must not depend on its neighbours) runs by
  itself, through the compiled static-cache path where that is on (CUDA). Where it is on, a greedy
  text request that finds the model idle runs there too: at batch 1 the compiled path is faster,
  and requests arriving meanwhile join the continuous batch.
The last two share the scheduler thread: one long-lived inference thread, as compiled CUDA graphs
require. Every path delivers tokens to the request's `TokenSink`, which decides when it is done.

Memory is bounded: each waiting request reserves its prompt plus `max_new_tokens` of KV cache from
a budget computed at setup, and waits in the queue until the budget has room.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UserError
from .streaming import TokenSink

logger = logging.getLogger(__name__)

OUT_OF_MEMORY = "the model ran out of memory on this request; retry it, or lower max_new_tokens."


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; requests batch together only when these are equal."""

    temperature: float | None = None  # None: greedy
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature is None

    def settings(self) -> dict[str, Any]:
        # Every value explicit, so the checkpoint's sampling defaults never leak in (Gemma 3 IT
        # ships do_sample with top_k 64 and top_p 0.95); top_k 0 really means no limit.
        if self.greedy:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}


@dataclass
class Job:
    """One request on its way through the model."""

    inputs: dict[str, Any]  # tensors for one row: input_ids, attention_mask, token_type_ids[, pixel_values]
    sampling: Sampling
    seed: int | None
    sink: TokenSink
    alone: bool = False  # decode by itself (set for a fixed seed, whose draws must not depend on others)
    submitted_at: float = 0.0
    started_at: float | None = None  # when it reached the model
    batch_size: int = 0  # how many requests shared its forward passes (0: continuous batching)

    @property
    def length(self) -> int:
        return int(self.inputs["input_ids"].shape[1])

    @property
    def has_images(self) -> bool:
        return "pixel_values" in self.inputs

    @property
    def tokens_needed(self) -> int:
        return self.length + self.sink.max_new_tokens


def serialize_forward(model) -> threading.Lock:
    """Let one forward pass at a time run on `model`; returns the lock they take turns with.

    The continuous batching manager and the scheduler each run steps in their own thread; two
    forward passes at once on the same modules changed the answers (tests/integration/
    test_batching.py shows it), so steps take turns. Each path still advances every step.
    """
    import functools

    lock = threading.Lock()
    forward = model.forward

    @functools.wraps(forward)
    def one_at_a_time(*args, **kwargs):
        with lock:
            return forward(*args, **kwargs)

    model.forward = one_at_a_time
    return lock


def kv_bytes_per_token(text_config, dtype_bytes: int) -> int:
    """KV cache bytes one token takes in every layer (sliding layers counted in full: an upper bound)."""
    heads = text_config.num_key_value_heads
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
    return 2 * text_config.num_hidden_layers * heads * head_dim * dtype_bytes


class KvBudget:
    """Tokens of KV cache that running requests may hold at once."""

    def __init__(self, capacity_tokens: int):
        self.capacity_tokens = capacity_tokens
        self.used_tokens = 0
        self._lock = threading.Lock()

    def check(self, job: Job) -> None:
        if job.tokens_needed > self.capacity_tokens:
            raise UserError(
                f"this request needs {job.tokens_needed} tokens of cache (prompt plus max_new_tokens); the server "
                f"holds {self.capacity_tokens}. Lower max_new_tokens or shorten the prompt."
            )

    def reserve(self, job: Job) -> bool:
        with self._lock:
            if self.used_tokens + job.tokens_needed > self.capacity_tokens:
                return False
            self.used_tokens += job.tokens_needed
            return True

    def release(self, job: Job) -> None:
        with self._lock:
            self.used_tokens -= job.tokens_needed


# The longest a batch about to start waits for requests announced but not yet submitted.
GATHER_SECONDS = 0.5


class Scheduler:
    """Owns the model's decoding: routes each job, groups compatible ones, runs them."""

    def __init__(self, model, *, stop_ids: frozenset[int], pad_id: int, budget: KvBudget, max_batch: int,
                 static_cache_len: int | None = None, continuous=None):
        self.model = model
        self.stop_ids = stop_ids
        self.pad_id = pad_id
        self.budget = budget
        self.max_batch = max_batch
        self.static_cache_len = static_cache_len  # set: lone requests decode compiled, with a static cache
        self.continuous = continuous
        self._waiting: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self.groups_started = 0  # batches taken from the queue so far (for logs and tests)
        self._group: list[Job] = []  # the group decoding now
        self._announced = 0  # requests on their way here (being screened or prepared)
        self._thread = threading.Thread(target=self._loop, name="medgemma-scheduler", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self.budget.check(job)
        job.submitted_at = time.perf_counter()
        job.alone = job.alone or job.seed is not None
        if self.continuous is not None and self.continuous.accepts(job):
            with self._wake:
                if self._compiled_and_idle(job):
                    job.alone = True
                    self._waiting.append(job)
                    self._wake.notify_all()
                    return
            if self.continuous.submit(job):
                return
        with self._wake:
            self._waiting.append(job)
            self._wake.notify_all()

    def _compiled_and_idle(self, job: Job) -> bool:
        """Whether `job` should decode alone on the compiled path: it is on, and nothing else runs."""
        return (self.static_cache_len is not None and job.tokens_needed <= self.static_cache_len
                and not self._waiting and all(j.sink.done for j in self._group) and not self.continuous.busy())

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=30)
        if self.continuous is not None:
            self.continuous.close()

    # -- the scheduler thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting:
                    self._wake.wait()
                if self._closed:
                    for job in self._waiting:
                        job.sink.fail(RuntimeError("the engine is shutting down"))
                    return
                self._gather()
                group = self._next_group()
                self.groups_started += bool(group)
                self._group = group
            if not group:
                time.sleep(0.01)  # the budget is full: wait for a running request to finish
                continue
            try:
                self.run(group)
            finally:
                for job in group:
                    self.budget.release(job)

    def announce(self) -> Callable[[], None]:
        """Say a request is on its way (its prompt is being screened, its images read); returns the
        function to call once it is submitted or will not be. A batch about to start waits for
        announced requests, at most GATHER_SECONDS, so that a burst of predictions decodes together
        instead of the first alone and the rest after it."""
        with self._wake:
            self._announced += 1
        done = threading.Event()

        def arrived() -> None:
            if not done.is_set():
                done.set()
                with self._wake:
                    self._announced -= 1
                    self._wake.notify_all()

        return arrived

    def _gather(self) -> None:
        """Wait (holding `_wake`) while announced requests may still join the batch about to start."""
        deadline = time.monotonic() + GATHER_SECONDS
        while (self._announced > 0 and self._waiting and len(self._waiting) < self.max_batch
               and not self._waiting[0].alone and (left := deadline - time.monotonic()) > 0):
            self._wake.wait(left)

    def _next_group(self) -> list[Job]:
        """The oldest waiting job and the compatible ones behind it, within the budget (FIFO head first)."""
        while self._waiting and self._waiting[0].sink.done:  # canceled or past its deadline while waiting
            self._waiting.popleft()
        if not self._waiting or not self.budget.reserve(self._waiting[0]):
            return []
        head = self._waiting.popleft()
        group = [head]
        if not head.alone:
            for job in list(self._waiting):
                if len(group) >= self.max_batch:
                    break
                if not job.alone and job.sampling == head.sampling and self.budget.reserve(job):
                    self._waiting.remove(job)
                    group.append(job)
        return group

    def run(self, jobs: list[Job]) -> None:
        """Decode `jobs` together (left-padded, images stacked) until every one of them is done."""
        import torch
        from transformers import CompileConfig, GenerationConfig, StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        sinks = [job.sink for job in jobs]
        started = time.perf_counter()
        for job in jobs:
            job.started_at, job.batch_size = started, len(jobs)

        class Rows(BaseStreamer):
            def __init__(self):
                self.prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:  # generate() pushes the prompt first
                    self.prompt_seen = True
                    return
                for sink, token in zip(sinks, value.reshape(-1).tolist(), strict=True):
                    sink.push([token])

            def end(self):
                pass

        class RowsDone(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.tensor([sink.done for sink in sinks], dtype=torch.bool, device=input_ids.device)

        settings = {
            **jobs[0].sampling.settings(),
            "max_new_tokens": max(sink.max_new_tokens for sink in sinks),
            "eos_token_id": sorted(self.stop_ids),
            "pad_token_id": self.pad_id,
        }
        longest = max(job.tokens_needed for job in jobs)
        if self.static_cache_len is not None and len(jobs) == 1 and longest <= self.static_cache_len:
            compile_config = CompileConfig()
            compile_config._compile_all_devices = True  # on CPU only when asked for (MEDGEMMA_COMPILE=1)
            settings.update(cache_implementation="static", max_cache_len=self.static_cache_len,
                            compile_config=compile_config)
        try:
            inputs = _left_padded([job.inputs for job in jobs], self.pad_id, self.model.device, self.model.dtype)
            if jobs[0].seed is not None:
                torch.manual_seed(jobs[0].seed)
            with torch.inference_mode():
                self.model.generate(**inputs, generation_config=GenerationConfig(**settings), streamer=Rows(),
                                    stopping_criteria=StoppingCriteriaList([RowsDone()]))
        except BaseException as error:  # every reader gets it (or a clear out-of-memory message)
            if _is_out_of_memory(error):
                logger.error("out of memory decoding %d request(s); they fail, the service goes on", len(jobs))
                error = UserError(OUT_OF_MEMORY)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            for sink in sinks:
                sink.fail(error)
            if not isinstance(error, Exception):
                raise
            return
        for sink in sinks:
            sink.finish("length")  # a no-op for rows that stopped on their own


def _left_padded(rows: list[dict[str, Any]], pad_id: int, device, dtype) -> dict[str, Any]:
    import torch

    longest = max(int(row["input_ids"].shape[1]) for row in rows)

    def pad(key: str, value: int):
        return torch.cat([torch.nn.functional.pad(row[key], (longest - row[key].shape[1], 0), value=value)
                          for row in rows]).to(device)

    inputs = {"input_ids": pad("input_ids", pad_id), "attention_mask": pad("attention_mask", 0),
              "token_type_ids": pad("token_type_ids", 0)}
    pixels = [row["pixel_values"] for row in rows if "pixel_values" in row]
    if pixels:  # one vision-tower pass for every image of every row, in row order
        inputs["pixel_values"] = torch.cat(pixels).to(device=device, dtype=dtype)
    return inputs


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()


class Continuous:
    """Greedy text requests through transformers' continuous batching: they join at the next step."""

    PAGE_SIZE = 256
    PREFILL_TOKENS = 1024  # prompt tokens one step may process: bounds the step's activation memory

    def __init__(self, model, *, stop_ids: frozenset[int], budget_tokens: int, max_batch: int):
        from transformers import ContinuousBatchingConfig, GenerationConfig

        self.stop_ids = stop_ids
        self.failed: BaseException | None = None  # set if the manager's thread died: its jobs go elsewhere
        self.manager = model.init_continuous_batching(
            generation_config=GenerationConfig(do_sample=False, eos_token_id=sorted(stop_ids), max_new_tokens=1),
            continuous_batching_config=ContinuousBatchingConfig(
                page_size=self.PAGE_SIZE, num_blocks=max(4, budget_tokens // self.PAGE_SIZE),
                max_batch_tokens=self.PREFILL_TOKENS, max_requests_per_batch=max_batch,
                auto_switch_to_flash=False, allow_block_sharing=False,
            ),
        )
        self.manager.start()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._deliver, name="medgemma-continuous-out", daemon=True)
        self._thread.start()

    def accepts(self, job: Job) -> bool:
        return self.failed is None and job.sampling.greedy and not job.alone and not job.has_images

    def busy(self) -> bool:
        """Whether the manager holds requests that still want tokens."""
        with self._lock:
            return not all(job.sink.done for job in self._jobs.values())

    def submit(self, job: Job) -> bool:
        """Hand `job` to the manager; False if the manager can no longer take it (send it elsewhere)."""
        with self._lock:
            self._counter += 1
            request_id = f"r{self._counter}"
            self._jobs[request_id] = job
        job.started_at = time.perf_counter()
        accepted = self.manager.add_request(job.inputs["input_ids"][0].tolist(), request_id=request_id,
                                            max_new_tokens=job.sink.max_new_tokens, streaming=True,
                                            eos_token_id=sorted(self.stop_ids))
        if accepted is None:
            with self._lock:
                self._jobs.pop(request_id, None)
            self._give_up(RuntimeError("continuous batching stopped"))
            return False
        return True

    def _give_up(self, error: BaseException, *, closing: bool = False) -> None:
        """The manager's thread is gone: fail what it held and take no more."""
        if self.failed is None and not closing:
            logger.error("continuous batching stopped (%s); greedy text requests now run batched", type(error).__name__)
        self.failed = error
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.sink.fail(error)

    def _deliver(self) -> None:
        """Route the manager's outputs to their sinks; cancel the requests whose reader gave up."""
        delivered: dict[str, int] = {}
        while not self._closed.is_set():
            fatal = self.manager.background_thread_status.fatal_error
            if fatal is not None or not self.manager.is_running():
                if not self._closed.is_set():
                    self._give_up(fatal or RuntimeError("continuous batching stopped"))
                return
            output = self.manager.get_result(timeout=0.05)
            if output is not None:
                job = self._jobs.get(output.request_id)
                if job is not None:
                    done = delivered.get(output.request_id, 0)
                    job.sink.push(output.generated_tokens[done:])
                    delivered[output.request_id] = len(output.generated_tokens)
                    if output.is_finished():
                        self._forget(output.request_id, delivered)
                        if output.error:
                            job.sink.fail(RuntimeError(output.error))
                        job.sink.finish("length")
            with self._lock:
                running = list(self._jobs.items())
            for request_id, job in running:
                if job.sink.done:  # canceled, past its deadline, or stopped on its own
                    self.manager.cancel_request(request_id)
                    self._forget(request_id, delivered)

    def _forget(self, request_id: str, delivered: dict[str, int]) -> None:
        with self._lock:
            self._jobs.pop(request_id, None)
        delivered.pop(request_id, None)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=10)
        self.manager.stop(block=True)
        self._give_up(RuntimeError("the engine is shutting down"), closing=True)

