"""The servers the e2e tests talk to: the real Cog server on the tiny model, on loopback.

Module-scoped: each test module gets its own server, started once."""

from __future__ import annotations

import pytest

from tests.support.server import CONCURRENCY, model_env, running_server

@pytest.fixture(scope="module")
def server(tiny_long_weights, tmp_path_factory):
    """As `make serve` runs it: several predictions at once (the tiny model with an 8,192-token context)."""
    with running_server(tmp_path_factory.mktemp("server"),
                        **model_env(tiny_long_weights, COG_MAX_CONCURRENCY=str(CONCURRENCY))) as server:
        yield server


@pytest.fixture(scope="module")
def sequential_server(tiny_long_weights, tmp_path_factory):
    """One prediction at a time: the shape in which a cancel reaches the generation."""
    with running_server(tmp_path_factory.mktemp("sequential"), **model_env(tiny_long_weights)) as server:
        yield server
