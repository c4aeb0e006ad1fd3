"""Model inputs for one request: the chat segments tokenized, the images preprocessed.

The caller's text is tokenized with special tokens split, so control strings typed into a prompt
stay plain text; our own markup and each image's placeholder sequence are tokenized as markup. For
ordinary prompts this gives exactly the ids the processor gives for the whole rendered string (the
tests compare them).

Requests are tokenized in many threads at once. The transformers tokenizer switches special-token
splitting on a backend shared by every call, so between one call setting it and encoding, another
can flip it. Each of the two modes therefore has a backend of its own, set once and never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from .prompt import Part, Segment


@dataclass(frozen=True)
class Tokenizer:
    """What encoding needs from a Gemma 3 processor, read once."""

    text: Any  # a `tokenizers.Tokenizer` that splits special tokens: for the caller's text
    markup: Any  # one that reads them as control tokens: for our own markup
    image_sequence_ids: tuple[int, ...]  # "\n\n<start_of_image>" + 256 soft tokens + "<end_of_image>\n\n"
    image_token_id: int

    @classmethod
    def from_processor(cls, processor) -> Tokenizer:
        tokenizer = processor.tokenizer
        text, markup = (_backend(tokenizer, split_special_tokens=split) for split in (True, False))
        ids = markup.encode(processor.full_image_sequence, add_special_tokens=False).ids
        return cls(text, markup, tuple(ids), int(tokenizer.image_token_id))

    def encode(self, segments: list[Segment]) -> list[int]:
        ids: list[int] = []
        for segment in segments:
            if segment.part is Part.IMAGE:
                ids.extend(self.image_sequence_ids)
            else:
                backend = self.text if segment.part is Part.TEXT else self.markup
                ids.extend(backend.encode(segment.text, add_special_tokens=False).ids)
        return ids


def _backend(tokenizer, *, split_special_tokens: bool):
    """A private copy of `tokenizer`'s Rust backend, in one fixed mode, without truncation or padding."""
    from tokenizers import Tokenizer as Backend

    backend = Backend.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.encode_special_tokens = split_special_tokens
    return backend


def model_inputs(ids: list[int], images: list[Image.Image], tokenizer: Tokenizer, image_processor) -> dict:
    """Tensors for `generate`: ids, mask, the image-token mask Gemma 3 attends with, and pixels."""
    import torch

    input_ids = torch.tensor([ids], dtype=torch.long)
    inputs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "token_type_ids": (input_ids == tokenizer.image_token_id).long(),
    }
    if images:
        inputs["pixel_values"] = image_processor(images, return_tensors="pt")["pixel_values"]
    return inputs
