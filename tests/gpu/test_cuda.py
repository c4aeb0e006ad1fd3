"""Opt-in GPU tier: runs only where torch sees CUDA (skipped on CPU machines and in CI)."""

import pytest
import torch

from medgemma.loader import load_engine
from medgemma.request import GenerationRequest
from medgemma.weights import ResolvedWeights, WeightsKind
from tests.support.images import png_bytes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_bfloat16_on_cuda_generates_with_an_image(tiny_weights, tmp_path):
    engine = load_engine(ResolvedWeights(tiny_weights, WeightsKind.MEDGEMMA, "test"), "cuda")
    assert engine.model.dtype == torch.bfloat16 and engine.model.device.type == "cuda"
    image = tmp_path / "x.png"
    image.write_bytes(png_bytes())
    generation = engine.generate(GenerationRequest(prompt="Describe.", image=image, max_new_tokens=8))
    list(generation)
    assert generation.stats.output_tokens > 0
