"""Test tiers by folder: unit (pure, milliseconds), integration (tiny real model), e2e (the real
Cog server), gpu (opt-in, needs CUDA). The demo model's test is marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_model import build_tiny_weights

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
