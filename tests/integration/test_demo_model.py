"""The embedded demo model, built from its package exactly as `make serve` does on a fresh machine."""

import pytest

from medgemma.config import EngineSettings, ServiceConfig
from medgemma.demo import build_demo_model
from medgemma.policy import DEMO_NOTICE
from medgemma.loader import load_engine, load_service
from medgemma.request import GenerationRequest
from medgemma.weights import WeightsKind, weights_kind
from tests.support.batching import batched_together, continuously_together
from tests.support.images import png_bytes


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    build_demo_model(root / "demo-gemma3-270m")
    with load_service(ServiceConfig(weights_root=root, device="cpu")) as service:
        yield service  # closed after: the batching threads stop, so the test process can exit


@pytest.mark.slow
def test_demo_model_is_marked_and_answers_greedily(demo_service, tmp_path):
    assert weights_kind(demo_service.weights.path) is WeightsKind.DEMO
    tokenizer = demo_service.engine.tokenizer
    # The real Gemma 3 vocabulary and MedGemma's image token id.
    assert tokenizer.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>", "<image_soft_token>"]) == [
        105, 106, 262144]
    request = GenerationRequest(prompt="What is the function of the kidney?", max_new_tokens=16)
    first = demo_service.answer(request)
    text = "".join(first)
    assert "kidney" in text.lower() or "blood" in text.lower()
    assert DEMO_NOTICE in text
    assert text == "".join(demo_service.answer(request))  # greedy: the same answer twice
    assert first.metrics()["model"] == "demo-gemma3-270m"

    image = tmp_path / "slide.png"
    image.write_bytes(png_bytes((512, 384)))
    with_image = demo_service.answer(GenerationRequest(prompt="Describe this image for a teaching slide.",
                                                       image=image, max_new_tokens=4))
    list(with_image)
    assert with_image.metrics()["input_token_count"] > 256


@pytest.mark.slow
def test_strict_mode_refuses_the_demo(demo_service):
    from medgemma.errors import WeightsError

    with pytest.raises(WeightsError, match="demo model"):
        load_service(ServiceConfig(weights_path=demo_service.weights.path, strict=True))


TEXT = [GenerationRequest(prompt=p, max_new_tokens=n) for p, n in [
    ("What is the function of the kidney?", 12), ("Name three bones of the arm.", 20),
    ("Explain what a vaccine does.", 8), ("What does the liver do?", 16)]]


@pytest.mark.slow
def test_demo_answers_batched_are_the_answers_alone(demo_service):
    """Real weights, the default engine: greedy text requests of different lengths joining the
    continuous batch at one step, and image requests decoded as one batch (one vision pass), give
    each request the answer it gets alone."""
    engine = demo_service.engine
    solo = ["".join(engine.generate(request)) for request in TEXT]
    generations, texts = continuously_together(engine, TEXT)
    assert texts == solo
    assert {g.stats.batch_size for g in generations} == {0}

    images = [GenerationRequest(prompt=f"Describe image {i} for a teaching slide.", max_new_tokens=6 + 3 * i,
                                image=png_bytes((200 + 40 * i, 160), (40 * i, 90, 200))) for i in range(3)]
    solo = ["".join(engine.generate(request)) for request in images]
    generations, texts = batched_together(engine, images)
    assert texts == solo
    assert {g.stats.batch_size for g in generations} == {len(images)}


@pytest.mark.slow
def test_demo_text_batched_without_continuous_batching_answers_as_alone(demo_service):
    """MEDGEMMA_CONTINUOUS_BATCHING=0: greedy text goes through the scheduler's left-padded batches."""
    engine = load_engine(demo_service.weights, "cpu", EngineSettings(max_batch=8, continuous=False))
    try:
        solo = ["".join(engine.generate(request)) for request in TEXT]
        generations, texts = batched_together(engine, TEXT)
        assert texts == solo
        assert {g.stats.batch_size for g in generations} == {len(TEXT)}
    finally:
        engine.close()
