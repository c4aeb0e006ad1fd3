"""Model inputs for one request: the chat segments tokenized, the images preprocessed.

The caller's text is tokenized with `split_special_tokens=True`, so control strings typed into a
prompt stay plain text; our own markup and each image's placeholder sequence are tokenized as
markup. For ordinary prompts this gives exactly the ids the processor gives for the whole rendered
string (the tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from .prompt import Part, Segment


@dataclass(frozen=True)
class Tokenizer:
    """What encoding needs from a Gemma 3 processor, read once."""

    tokenizer: Any
    image_sequence_ids: tuple[int, ...]  # "\n\n<start_of_image>" + 256 soft tokens + "<end_of_image>\n\n"
    image_token_id: int

    @classmethod
    def from_processor(cls, processor) -> Tokenizer:
        tokenizer = processor.tokenizer
        ids = tokenizer(processor.full_image_sequence, add_special_tokens=False)["input_ids"]
        return cls(tokenizer, tuple(ids), int(tokenizer.image_token_id))

    def encode(self, segments: list[Segment]) -> list[int]:
        ids: list[int] = []
        for segment in segments:
            if segment.part is Part.IMAGE:
                ids.extend(self.image_sequence_ids)
            else:
                ids.extend(self.tokenizer(segment.text, add_special_tokens=False,
                                          split_special_tokens=segment.part is Part.TEXT)["input_ids"])
        return ids


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
