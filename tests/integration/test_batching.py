"""Concurrent requests on one engine: batched answers are the answers each request gets alone."""

import dataclasses
import threading
import time

import pytest

from medgemma.config import EngineSettings
from medgemma.loader import load_engine
from medgemma.request import MAX_NEW_TOKENS_LIMIT, GenerationRequest
from medgemma.service import Service
from medgemma.weights import ResolvedWeights, WeightsKind
from tests.support.batching import batched_together, continuously_together, scheduler_held, start_reading
from tests.support.fakes import FakeGuard
from tests.support.images import png_bytes

TEXT_PROMPTS = ["Name the bones of the hand.", "Count to ten, slowly and in full words please.", "Hi.",
                "Describe the anatomy of the heart in great detail for a lecture on cardiology."]


@pytest.fixture(scope="module")
def engine(tiny_weights):
    """Every request through the scheduler's batches (greedy text too: no continuous batching)."""
    engine = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu",
                         EngineSettings(max_batch=8, kv_cache_tokens=32_768, continuous=False))  # not from free RAM
    yield engine
    engine.close()


def image_request(index: int, max_new_tokens: int = 12) -> GenerationRequest:
    colors = [(200, 40, 40), (10, 200, 30), (0, 0, 255), (120, 120, 120)]
    return GenerationRequest(prompt=f"Describe image {index}.", image=png_bytes((64 + 8 * index, 48), colors[index]),
                             max_new_tokens=max_new_tokens)


def alone(engine, request: GenerationRequest) -> str:
    generation = engine.generate(request)
    text = "".join(generation)
    assert generation.stats.batch_size in (0, 1)
    return text


def endless_request() -> GenerationRequest:
    """The tiny model answers this image prompt with one token repeated, never ending its turn."""
    return GenerationRequest(prompt="Wait.", image=png_bytes((32, 32)), max_new_tokens=600)


def all_at_once(engine, requests) -> tuple[list, list[str]]:
    """Start every request at once, with no hold on the scheduler: batches form as they arrive."""
    generations, texts, threads = start_reading(engine, requests)
    for thread in threads:
        thread.join(timeout=120)
    return generations, [texts[i] for i in range(len(requests))]


def test_batched_image_requests_answer_as_they_do_alone(engine):
    requests = [image_request(i, max_new_tokens=8 + 3 * i) for i in range(4)]
    solo = [alone(engine, request) for request in requests]
    generations, texts = batched_together(engine, requests)
    assert texts == solo
    assert {g.stats.batch_size for g in generations} == {4}  # one forward pass for the four
    assert [g.stats.max_new_tokens for g in generations] == [8, 11, 14, 17]


@pytest.fixture(scope="module")
def continuous_engine(tiny_weights):
    """The default: greedy text through continuous batching."""
    engine = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu",
                         EngineSettings(max_batch=8, kv_cache_tokens=32_768))
    yield engine
    engine.close()


def test_continuously_batched_text_requests_answer_as_they_do_alone(continuous_engine):
    engine = continuous_engine
    requests = [GenerationRequest(prompt=p, max_new_tokens=10 + 5 * i) for i, p in enumerate(TEXT_PROMPTS)]
    solo = [alone(engine, request) for request in requests]
    generations, texts = continuously_together(engine, requests)
    assert texts == solo
    assert {g.stats.batch_size for g in generations} == {0}  # continuous batching


def test_text_and_images_mixed_all_answer_as_alone(engine):
    requests = [image_request(0), GenerationRequest(prompt=TEXT_PROMPTS[1], max_new_tokens=12), image_request(2),
                GenerationRequest(prompt=TEXT_PROMPTS[3], max_new_tokens=7)]
    solo = [alone(engine, request) for request in requests]
    assert batched_together(engine, requests)[1] == solo


def test_canceling_one_row_of_a_batch_leaves_the_others_alone(engine):
    requests = [image_request(i, max_new_tokens=40) for i in range(3)]
    solo = [alone(engine, request) for request in requests]
    stop = threading.Event()
    texts: dict[int, str] = {}

    def read(generation, index: int) -> None:
        pieces = []
        for piece in generation:
            pieces.append(piece)
            if index == 1 and len(pieces) == 2:
                stop.set()  # what a Cog cancel or a closed client does
        texts[index] = "".join(pieces)

    with scheduler_held(engine) as wait_queued:
        generations = [engine.generate(requests[0]), engine.generate(requests[1], stop), engine.generate(requests[2])]
        threads = [threading.Thread(target=read, args=(g, i)) for i, g in enumerate(generations)]
        for thread in threads:
            thread.start()
        wait_queued(3)
    for thread in threads:
        thread.join(timeout=120)
    assert texts[0] == solo[0] and texts[2] == solo[2]
    canceled = generations[1].stats
    assert canceled.finish_reason == "canceled" and canceled.output_tokens < 40
    assert generations[0].stats.batch_size == 3


def test_a_row_finishing_early_does_not_change_the_others(engine):
    requests = [image_request(0, max_new_tokens=2), image_request(1, max_new_tokens=30), image_request(3, 30)]
    solo = [alone(engine, request) for request in requests]
    generations, texts = batched_together(engine, requests)
    assert texts == solo
    assert generations[0].stats.output_tokens <= 2 and generations[0].stats.finish_reason in ("length", "stop")


def test_requests_over_the_cache_budget_wait_their_turn(tiny_weights):
    """Room for one request's cache at a time: the others queue instead of running out of memory."""
    settings = EngineSettings(max_batch=8, kv_cache_tokens=700, continuous=False)
    small = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu", settings)
    try:
        requests = [image_request(i, max_new_tokens=10) for i in range(3)]  # ~ 600 tokens each with the image
        solo = [alone(small, request) for request in requests]
        generations, texts = all_at_once(small, requests)
        assert texts == solo
        assert all(g.stats.batch_size == 1 for g in generations)
        assert max(g.stats.queue_seconds for g in generations) > 0.01
    finally:
        small.close()


def test_a_request_larger_than_the_whole_budget_is_a_user_error(tiny_weights):
    from medgemma.errors import UserError

    small = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu",
                        EngineSettings(kv_cache_tokens=400, continuous=False))
    try:
        with pytest.raises(UserError, match="tokens of cache"):
            "".join(small.generate(image_request(0, max_new_tokens=50)))
    finally:
        small.close()


def test_a_fixed_seed_reproduces_a_sampled_answer_even_under_load(engine):
    request = GenerationRequest(prompt="Go.", temperature=1.0, seed=7, max_new_tokens=16)
    first = alone(engine, request)
    generations, texts = all_at_once(engine, [request, image_request(1), request])
    assert texts[0] == first and texts[2] == first
    assert generations[0].stats.batch_size == 1 and generations[0].stats.seed == 7


def test_deadline_stops_a_request_nobody_can_cancel(tiny_long_weights):
    settings = EngineSettings(max_seconds=0.3, continuous=False)
    strict = load_engine(ResolvedWeights(tiny_long_weights, WeightsKind.MEDGEMMA, "test"), "cpu", settings)
    try:
        request = dataclasses.replace(endless_request(), max_new_tokens=MAX_NEW_TOKENS_LIMIT)
        generation = strict.generate(request)
        started = time.perf_counter()
        "".join(generation)
        assert time.perf_counter() - started < 5
        assert generation.stats.finish_reason == "deadline"
        assert 0 < generation.stats.output_tokens < MAX_NEW_TOKENS_LIMIT
    finally:
        strict.close()


@pytest.mark.slow
def test_the_compiled_static_cache_path_answers_as_the_eager_one(tiny_weights):
    """What CUDA runs for a lone request, forced on the CPU: identical greedy answers, including a
    prompt longer than the sliding window and an image."""
    requests = [GenerationRequest(prompt="Name the bones of the hand.", max_new_tokens=16),
                image_request(1, max_new_tokens=12),
                GenerationRequest(prompt="Explain " + "the anatomy of the heart " * 12, max_new_tokens=12)]
    eager = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu",
                        EngineSettings(continuous=False, compile=False, context_tokens=1024))
    compiled = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu",
                           EngineSettings(continuous=False, compile=True, context_tokens=1024))
    try:
        import torch._dynamo

        assert compiled.scheduler.static_cache_len == 1024 and eager.scheduler.static_cache_len is None
        torch._dynamo.utils.counters.clear()
        for request in requests:
            assert "".join(compiled.generate(request)) == "".join(eager.generate(request))
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it really ran compiled
    finally:
        eager.close()
        compiled.close()


@pytest.mark.slow
def test_greedy_text_on_an_idle_compiled_engine_runs_alone_and_the_next_joins_the_continuous_batch(tiny_weights):
    """On CUDA (compiled path on), a lone greedy text request takes the faster batch-1 compiled path;
    one that arrives while it decodes goes to the continuous batch instead of waiting for it."""
    settings = EngineSettings(compile=True, context_tokens=1024, kv_cache_tokens=32_768)
    engine = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu", settings)
    first = GenerationRequest(prompt=TEXT_PROMPTS[3], max_new_tokens=200)
    second = GenerationRequest(prompt=TEXT_PROMPTS[1], max_new_tokens=12)
    try:
        solo = [alone(engine, request) for request in (first, second)]
        running = engine.generate(first)
        pieces = iter(running)
        text = next(pieces)  # decoding: the model is no longer idle
        joining = engine.generate(second)
        assert "".join(joining) == solo[1]
        assert text + "".join(pieces) == solo[0]
        assert (running.stats.batch_size, joining.stats.batch_size) == (1, 0)
        for _ in range(5):  # one after another: each finds the model idle the moment the last one ended
            generation = engine.generate(second)
            assert "".join(generation) == solo[1] and generation.stats.batch_size == 1
    finally:
        engine.close()


def test_requests_with_several_images_batch_with_single_image_ones(engine):
    requests = [GenerationRequest(prompt="Compare.", images=(png_bytes((40, 40)), png_bytes((50, 30), (0, 90, 0))),
                                  max_new_tokens=9),
                image_request(1, max_new_tokens=6)]
    solo = [alone(engine, request) for request in requests]
    generations, texts = batched_together(engine, requests)
    assert texts == solo
    assert {g.stats.batch_size for g in generations} == {2}


def test_a_burst_screened_one_after_another_still_decodes_as_one_batch(engine):
    """Screening spreads a burst over time (one guard call after another); the batch about to
    start waits for the requests still being screened instead of starting with the first alone."""
    service = Service(engine, screen=FakeGuard(seconds=0.05))
    guard_lock = threading.Lock()  # one screening at a time, as on a busy 2-core machine
    screen = service._screen
    service._screen = lambda *args, **kwargs: _one_at_a_time(guard_lock, screen, *args, **kwargs)
    requests = [image_request(i, max_new_tokens=5) for i in range(4)]
    answers = [None] * 4

    def run(index: int) -> None:
        answers[index] = service.answer(requests[index])
        "".join(answers[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [a.generation.stats.batch_size for a in answers] == [4, 4, 4, 4]


def _one_at_a_time(lock, screen, *args, **kwargs):
    with lock:
        return screen(*args, **kwargs)
