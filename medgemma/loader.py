"""Loading weights onto a device and assembling the service around them."""

from __future__ import annotations

import logging
import time

from .config import EngineSettings, ServiceConfig
from .engine import Engine
from .service import Service
from .errors import WeightsError
from .weights import HOW_TO_PROVIDE_WEIGHTS, ResolvedWeights, resolve_weights

logger = logging.getLogger(__name__)


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise WeightsError("MEDGEMMA_DEVICE=cuda but no CUDA GPU is visible to torch.")
    return requested


def load_engine(weights: ResolvedWeights, device: str, settings: EngineSettings | None = None) -> Engine:
    """AutoProcessor + AutoModelForImageTextToText from a checked weights directory."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    # Gemma 3 activations overflow float16, so GPUs get bfloat16, never fp16; CPUs
    # run float32, where bfloat16 matmuls are slow.
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    started = time.perf_counter()
    try:
        processor = AutoProcessor.from_pretrained(weights.path)
        model = AutoModelForImageTextToText.from_pretrained(weights.path, dtype=dtype, device_map=device)
    except (OSError, ValueError, KeyError) as error:
        raise WeightsError(f"could not load weights from {weights.path}: {error}\n{HOW_TO_PROVIDE_WEIGHTS}") from error
    model.eval()
    logger.info("loaded %s weights from %s on %s (%s) in %.1f s", weights.kind.value, weights.path, device,
                str(dtype).removeprefix("torch."), time.perf_counter() - started)
    return Engine(model, processor, device=device, settings=settings)


def load_service(config: ServiceConfig) -> Service:
    """Resolve weights, load them, and wrap them in the guarded service."""
    from . import guard
    from .demo import build_demo_model

    started = time.perf_counter()
    guard.load()  # at setup, so the first request does not pay for it
    logger.info("guard loaded in %.2f s", time.perf_counter() - started)

    weights = resolve_weights(config, build_demo=build_demo_model)
    logger.info("weights: %s (%s)", weights.path, weights.origin)
    if weights.is_demo:
        logger.warning("serving the DEMO model (Gemma 3 270M base), not MedGemma: answers are not medical-grade")
    engine = load_engine(weights, pick_device(config.device), config.engine)
    if config.engine.warm_up:
        started = time.perf_counter()
        engine.warm_up()
        logger.info("warm-up on every decoding path took %.1f s", time.perf_counter() - started)
    return Service(engine, weights=weights)
