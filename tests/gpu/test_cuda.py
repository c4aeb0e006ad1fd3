"""Opt-in GPU tier: runs only where torch sees CUDA (skipped on CPU machines and in CI).

    MEDGEMMA_GPU_WEIGHTS=weights/medgemma-4b-it python -m pytest tests/gpu    # real weights, if present

Without MEDGEMMA_GPU_WEIGHTS the tiny model is used: same code paths, bf16, CUDA, compiled."""

import os
from pathlib import Path

import pytest
import torch

from medgemma.config import ServiceConfig
from medgemma.loader import load_service
from medgemma.request import GenerationRequest
from tests.support.images import png_bytes

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def service(tiny_long_weights):
    weights = Path(os.environ.get("MEDGEMMA_GPU_WEIGHTS") or tiny_long_weights)
    with load_service(ServiceConfig(weights_path=weights, device="cuda")) as service:
        yield service


def answer(service, **inputs) -> dict:
    result = service.answer(GenerationRequest(**inputs))
    text = "".join(result)
    return {"text": text, **result.metrics()}


def test_bfloat16_on_cuda_answers_text_and_an_image(service):
    assert service.engine.model.dtype == torch.bfloat16 and service.engine.model.device.type == "cuda"
    text = answer(service, prompt="Explain what a stethoscope is.", max_new_tokens=8)
    assert text["guard.allowed"] and text["output_token_count"] > 0
    image = answer(service, prompt="Describe this image for a teaching slide.", image=png_bytes((640, 480)),
                   max_new_tokens=8)
    assert image["output_token_count"] > 0 and image["input_token_count"] > 256


def test_gpu_memory_is_stable_over_50_requests(service):
    requests = [dict(prompt=f"Explain topic {i} of cardiology.", max_new_tokens=16,
                     image=png_bytes((300 + i, 200)) if i % 2 else None) for i in range(50)]
    for inputs in requests[:5]:  # warm: caches and allocator pools settle
        answer(service, **inputs)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for inputs in requests:
        answer(service, **inputs)
    torch.cuda.synchronize()
    after = torch.cuda.memory_allocated()
    print(f"\nGPU memory allocated: {before / 2**20:.0f} -> {after / 2**20:.0f} MiB over 50 requests")
    assert after <= before + 64 * 2**20
