"""The real loader, processor, chat template and generate() on a tiny random Gemma 3 model."""

import threading

import pytest
import torch

from medgemma.config import ServiceConfig
from medgemma.errors import UserError
from medgemma.loader import load_engine, load_service
from medgemma.prompt import build_messages, render_gemma3
from medgemma.request import GenerationRequest
from medgemma.weights import ResolvedWeights, WeightsKind
from tests.support.images import png_bytes
from tests.support.tiny_model import IMAGE_TOKEN_ID, MAX_CONTEXT


@pytest.fixture(scope="module")
def engine(tiny_weights):
    return load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cpu")


@pytest.fixture()
def image_file(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(png_bytes((300, 200)))
    return path


def raw_generate(engine, request, image_file=None, **settings):
    """What plain transformers does with the same prompt: our reference."""
    from PIL import Image

    messages = build_messages(request.prompt, system_prompt=request.system_prompt, has_image=image_file is not None)
    images = [Image.open(image_file).convert("RGB")] if image_file else None
    inputs = engine.processor(text=render_gemma3(messages), images=images, add_special_tokens=False,
                              return_tensors="pt")
    output = engine.model.generate(**inputs, max_new_tokens=request.max_new_tokens, do_sample=False, **settings)
    new_ids = output[0, inputs["input_ids"].shape[1]:]
    return engine.tokenizer.decode(new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_loads_float32_on_cpu(engine):
    assert engine.model.dtype == torch.float32 and engine.device == "cpu"


def test_image_becomes_exactly_256_soft_tokens(engine, image_file):
    inputs = engine.prepare(GenerationRequest(prompt="Describe this image.", image=image_file))
    assert int((inputs["input_ids"] == IMAGE_TOKEN_ID).sum()) == 256
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 896, 896)


def test_prompt_starts_with_a_single_bos(engine):
    ids = engine.prepare(GenerationRequest(prompt="hi"))["input_ids"][0].tolist()
    assert ids[0] == engine.tokenizer.bos_token_id and ids[1] != engine.tokenizer.bos_token_id


def test_chat_template_and_pure_renderer_give_the_same_tokens(engine, tiny_weights_without_template, image_file):
    bare = load_engine(ResolvedWeights(tiny_weights_without_template, WeightsKind.MEDGEMMA, "test"), "cpu")
    assert bare.processor.chat_template is None and engine.processor.chat_template
    request = GenerationRequest(prompt="Describe.", image=image_file)
    assert torch.equal(engine.prepare(request)["input_ids"], bare.prepare(request)["input_ids"])


@pytest.mark.parametrize("with_image", [False, True])
def test_greedy_output_is_identical_to_raw_generate(engine, image_file, with_image):
    request = GenerationRequest(prompt="Name the bones of the hand.", image=image_file if with_image else None,
                                max_new_tokens=24)
    generation = engine.generate(request)
    ours = "".join(generation)
    assert ours == raw_generate(engine, request, image_file if with_image else None)
    assert generation.stats.output_tokens > 0 and generation.stats.input_tokens > 0


def test_streamed_pieces_concatenate_to_the_decoded_output(engine):
    generation = engine.generate(GenerationRequest(prompt="Count.", max_new_tokens=40))
    pieces = list(generation)
    assert len(pieces) > 1
    stats = generation.stats
    assert stats.finish_reason in ("stop", "length")
    assert stats.time_to_first_token is not None and stats.time_to_first_token > 0


def test_sampling_is_reproducible_with_a_seed(engine):
    def sample(seed):
        return "".join(engine.generate(GenerationRequest(prompt="Go.", temperature=1.0, seed=seed,
                                                         max_new_tokens=20)))

    assert sample(11) == sample(11)
    assert len({sample(11), sample(12), sample(13)}) > 1


def test_unseeded_sampling_reports_the_seed_it_drew(engine):
    generation = engine.generate(GenerationRequest(prompt="Go.", temperature=0.8, max_new_tokens=4))
    list(generation)
    assert isinstance(generation.stats.seed, int)


def test_stop_flag_stops_generation(engine):
    stop = threading.Event()
    generation = engine.generate(GenerationRequest(prompt="Talk.", max_new_tokens=200), stop)
    received = []
    for piece in generation:
        received.append(piece)
        stop.set()
    assert generation.stats.output_tokens < 20
    assert generation.stats.finish_reason == "canceled"


def test_closing_the_stream_stops_the_generation_thread(engine):
    generation = engine.generate(GenerationRequest(prompt="Talk.", max_new_tokens=200))
    pieces = iter(generation)
    next(pieces)
    pieces.close()  # what happens when a client goes away or Cog cancels
    assert not [t for t in threading.enumerate() if t.name == "medgemma-generate"]
    assert generation.stats.finish_reason == "canceled" and generation.stats.output_tokens < 200


def test_max_new_tokens_is_bounded_by_the_context(engine):
    generation = engine.generate(GenerationRequest(prompt="Talk.", max_new_tokens=4000))
    assert generation.stats.max_new_tokens == MAX_CONTEXT - generation.stats.input_tokens
    generation.pieces.close()


def test_prompt_longer_than_the_context_is_a_user_error(engine):
    with pytest.raises(UserError, match=f"context holds {MAX_CONTEXT}"):
        engine.generate(GenerationRequest(prompt="word " * 300))


def test_corrupt_image_is_a_user_error_before_generation(engine, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(png_bytes()[:40])
    with pytest.raises(UserError, match="PNG, JPEG"):
        engine.generate(GenerationRequest(prompt="Describe.", image=bad))


def test_service_loads_through_our_loader_and_disclaims(tiny_weights):
    service = load_service(ServiceConfig(weights_path=tiny_weights, strict=True, device="cpu"))
    answer = service.answer(GenerationRequest(prompt="Explain what an MRI measures.", max_new_tokens=8))
    text = "".join(answer)
    assert text.endswith("Health AI Developer Foundations terms.")
    assert answer.metrics()["model"] == tiny_weights.name and service.demo_notice is None
