"""A tiny random Gemma3ForConditionalGeneration with MedGemma's real vision geometry.

Hidden sizes are tiny, but images are 896x896 in 14-pixel patches pooled to 256 soft tokens,
and the processor is the real Gemma3Processor, so every code path of the service runs.
The tokenizer is byte-level (any text round-trips) with Gemma 3's special tokens.
"""

from __future__ import annotations

from pathlib import Path

from medgemma.prompt import chat_template
from medgemma.images import IMAGE_SIZE, IMAGE_TOKENS, PATCH_SIZE

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                  "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
PAD_ID, EOS_ID, BOS_ID, END_OF_TURN_ID, BOI_ID, EOI_ID, IMAGE_TOKEN_ID = 0, 1, 2, 5, 6, 7, 8
MAX_CONTEXT = 1024


def build_tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
    )


# What Gemma 3 instruction-tuned checkpoints ship in generation_config.json: sampling on by default.
IT_GENERATION_DEFAULTS = {"do_sample": True, "top_k": 64, "top_p": 0.95}


def build_tiny_weights(target: Path, *, with_chat_template: bool = True, seed: int = 0,
                       generation_defaults: dict | None = None, eos_token_ids: list[int] | None = None,
                       max_context: int = MAX_CONTEXT) -> Path:
    """Save a tiny model. `generation_defaults` go into its generation_config (as IT weights do);
    `eos_token_ids` replaces the end-of-sequence ids it declares (default: <eos> and <end_of_turn>)."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3 import Gemma3ImageProcessorPil

    tokenizer = build_tokenizer()
    config = Gemma3Config(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
                     "sliding_window": 64, "max_position_embeddings": max_context},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE},
        mm_tokens_per_image=IMAGE_TOKENS, image_token_index=IMAGE_TOKEN_ID, boi_token_index=BOI_ID,
        eoi_token_index=EOI_ID, eos_token_id=[EOS_ID, END_OF_TURN_ID], bos_token_id=BOS_ID, pad_token_id=PAD_ID,
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    if eos_token_ids is not None:
        model.generation_config.eos_token_id = eos_token_ids
    for name, value in (generation_defaults or {}).items():
        setattr(model.generation_config, name, value)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        chat_template=chat_template() if with_chat_template else None,
        image_seq_length=IMAGE_TOKENS,
    )
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target
