"""Running several requests on one engine at once, in a way whose batches do not depend on timing."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from medgemma.request import GenerationRequest


def start_reading(engine, requests) -> tuple[list, dict[int, str], list[threading.Thread]]:
    """Generations for `requests`, each read to the end by its own thread into `texts`."""
    generations = [engine.generate(request) for request in requests]
    texts: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i, g=g: texts.__setitem__(i, "".join(g)))
               for i, g in enumerate(generations)]
    for thread in threads:
        thread.start()
    return generations, texts, threads


def continuously_together(engine, requests) -> tuple[list, list[str]]:
    """Greedy text requests that join the continuous batching manager at one and the same step.

    A long companion request keeps the manager stepping; the requests are queued while its next
    step waits on the forward lock, so they all enter together, whatever the machine's load. The
    makeup of every batch, and so the rounding of every step, is then always the same.
    """
    stop = threading.Event()
    companion = iter(engine.generate(GenerationRequest(prompt="Recite the alphabet, slowly.", max_new_tokens=3000),
                                     stop))
    next(companion)
    with engine.forward_lock:
        generations, texts, threads = start_reading(engine, requests)
        _wait_for(lambda: len(engine.scheduler.continuous._jobs) >= len(requests) + 1, "requests were not queued",
                  time.monotonic() + 60)
    for thread in threads:
        thread.join(timeout=300)
    stop.set()
    for _ in companion:
        pass
    return generations, [texts[i] for i in range(len(requests))]


def batched_together(engine, requests) -> tuple[list, list[str]]:
    """Requests for the scheduler (images, sampling) that go as one batch, whatever the machine's load."""
    with scheduler_held(engine) as wait_queued:
        generations, texts, threads = start_reading(engine, requests)
        wait_queued(len(requests))
    for thread in threads:
        thread.join(timeout=300)
    return generations, [texts[i] for i in range(len(requests))]


@contextlib.contextmanager
def scheduler_held(engine) -> Iterator[Callable[[int], None]]:
    """Hold the scheduler while requests are started; they go as one batch when the block ends.

    With the forward lock held, a lone request (a fixed seed) takes the scheduler and waits at its
    first step. Inside the block, requests queue behind it; `wait_queued(n)` waits until n of them
    do. On leaving, the lone request is stopped and the lock released.
    """
    stop = threading.Event()
    blocker = engine.generate(GenerationRequest(prompt="Wait.", max_new_tokens=3000, temperature=1.0, seed=1), stop)
    started = engine.scheduler.groups_started
    reader = threading.Thread(target=lambda: "".join(blocker))
    deadline = time.monotonic() + 60

    def wait_queued(count: int) -> None:
        _wait_for(lambda: len(engine.scheduler._waiting) >= count, "requests were not queued", deadline)

    with _forward_lock(engine):
        reader.start()
        # The lone request is in its first step, waiting for the lock.
        _wait_for(lambda: engine.scheduler.groups_started != started, "the lone request did not start", deadline)
        try:
            yield wait_queued
        finally:
            stop.set()
    reader.join(timeout=300)


def _wait_for(condition: Callable[[], bool], failure: str, deadline: float) -> None:
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def _forward_lock(engine):
    """The lock every forward pass takes (installed here when the engine runs without one)."""
    from medgemma.batching import serialize_forward

    if engine.forward_lock is None:
        engine.forward_lock = serialize_forward(engine.model)
    return engine.forward_lock
