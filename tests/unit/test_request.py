import math

import pytest

from medgemma.errors import UserError
from medgemma.request import MAX_NEW_TOKENS_LIMIT, PROMPT_MAX_CHARS, GenerationRequest


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
