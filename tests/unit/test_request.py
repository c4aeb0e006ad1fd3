import math

import pytest

from medgemma.errors import UserError
from medgemma.request import (
    MAX_IMAGES,
    MAX_NEW_TOKENS_LIMIT,
    MIN_SAMPLING_TEMPERATURE,
    PROMPT_MAX_CHARS,
    GenerationRequest,
)


def test_defaults_are_greedy():
    request = GenerationRequest(prompt="What is anaemia?")
    assert request.greedy and request.seed is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "  "}, "prompt is empty"),
        ({"prompt": "x" * (PROMPT_MAX_CHARS + 1)}, "limit is"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between"),
        ({"max_new_tokens": MAX_NEW_TOKENS_LIMIT + 1}, "max_new_tokens must be between"),
        ({"max_new_tokens": 1.5}, "max_new_tokens must be an integer"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"seed": -5}, "seed"),
        ({"max_new_tokens": True}, "max_new_tokens must be an integer"),
    ],
)
def test_invalid_values_name_the_field_and_the_range(changes, message):
    with pytest.raises(UserError, match=message):
        GenerationRequest(**{"prompt": "hello", **changes})


def test_sampling_when_temperature_positive():
    assert not GenerationRequest(prompt="hi", temperature=0.7, seed=3).greedy


@pytest.mark.parametrize("temperature", [3.4e-102, 1e-9, 0.009])
def test_tiny_temperatures_decode_greedily(temperature):
    """Dividing logits by them would overflow to NaN; they are greedy in all but name."""
    assert GenerationRequest(prompt="hi", temperature=temperature).greedy
    assert not GenerationRequest(prompt="hi", temperature=MIN_SAMPLING_TEMPERATURE).greedy


def test_integral_floats_are_integers_as_json_says():
    request = GenerationRequest(prompt="hi", max_new_tokens=16.0, top_k=40.0, seed=7.0)
    assert (request.max_new_tokens, request.top_k, request.seed) == (16, 40, 7)
    assert all(isinstance(v, int) for v in (request.max_new_tokens, request.top_k, request.seed))


def test_one_image_is_the_first_of_images():
    request = GenerationRequest(prompt="Describe.", image=b"png")
    assert request.images == (b"png",)


def test_image_and_images_together_are_refused():
    with pytest.raises(UserError, match="either image .* or images"):
        GenerationRequest(prompt="Compare.", image=b"a", images=(b"b", b"c"))


def test_more_images_than_the_limit_are_refused_naming_it():
    GenerationRequest(prompt="Compare.", images=(b"x",) * MAX_IMAGES)
    with pytest.raises(UserError, match=f"limit is {MAX_IMAGES}"):
        GenerationRequest(prompt="Compare.", images=(b"x",) * (MAX_IMAGES + 1))


def test_image_markers_must_match_the_images_or_be_absent():
    GenerationRequest(prompt="Compare <image> with <image>.", images=(b"a", b"b"))
    GenerationRequest(prompt="Compare these.", images=(b"a", b"b"))  # no markers: after the prompt
    GenerationRequest(prompt="What does an <image> tag do in HTML?")  # no images: a marker is just text
    with pytest.raises(UserError, match=r"1 <image> marker\(s\) for 2 image\(s\).*one <image> where each"):
        GenerationRequest(prompt="Compare <image> with the other.", images=(b"a", b"b"))


@pytest.mark.parametrize("frame", [-1, 1.5, "2"])
def test_frame_must_be_a_non_negative_integer(frame):
    with pytest.raises(UserError, match="frame"):
        GenerationRequest(prompt="Describe.", image=b"x", frame=frame)
