"""Test tiers by folder: unit (pure, milliseconds), integration (tiny real model), e2e (the real
Cog server), gpu (opt-in, needs CUDA). The demo model's test is marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_model import EOS_ID, IT_GENERATION_DEFAULTS, build_tiny_weights

TIERS = ("unit", "integration", "e2e", "gpu")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return build_tiny_weights(tmp_path_factory.mktemp("tiny") / "tiny-gemma3")


@pytest.fixture(scope="session")
def tiny_weights_without_template(tmp_path_factory) -> Path:
    return build_tiny_weights(tmp_path_factory.mktemp("tiny-nt") / "tiny-gemma3", with_chat_template=False)


@pytest.fixture(scope="session")
def tiny_it_weights(tmp_path_factory) -> Path:
    """Like real Gemma 3 IT weights: sampling defaults, and only <eos> declared as end of sequence."""
    return build_tiny_weights(tmp_path_factory.mktemp("tiny-it") / "tiny-gemma3-it",
                              generation_defaults=IT_GENERATION_DEFAULTS, eos_token_ids=[EOS_ID])


@pytest.fixture(scope="session")
def tiny_long_weights(tmp_path_factory) -> Path:
    """A context of 8,192 tokens: answers long enough to cancel while they stream (the server tests)."""
    return build_tiny_weights(tmp_path_factory.mktemp("tiny-long") / "tiny-gemma3-long", max_context=8192)

