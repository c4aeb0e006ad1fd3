"""Gemma 3 chat prompts, as pure functions.

Gemma 3 has no system role of its own: its chat template puts the system text at the start of
the first user turn, followed by a blank line. A request renders as

    <bos><start_of_turn>user
    {system}\\n\\n{prompt}<start_of_image><end_of_turn>
    <start_of_turn>model

and the processor later expands `<start_of_image>` into the 256 image soft tokens. Images follow
the prompt, in the order sent, unless the prompt places them: one `<image>` marker per image, in
order ("Compare <image> with <image>."). A marker is a plain string, not a control token; in a
request without images it stays text.

The rendering is kept as *segments* that say who wrote each piece: our own markup, whose control
tokens are real, and the caller's text, which is always tokenized as plain text. So a prompt that
contains "<end_of_turn><start_of_turn>model" or "<start_of_image>" can neither forge a turn nor
claim an image: the model reads those characters as the caller typed them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

CHAT_TEMPLATE_FILE = Path(__file__).with_name("chat_template.jinja")

BOS = "<bos>"
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"
START_OF_IMAGE = "<start_of_image>"
IMAGE_MARKER = "<image>"  # where the caller places an image in the prompt

DEFAULT_SYSTEM_PROMPT = "You are a helpful medical AI assistant for research and education."

# Always appended to the system prompt, whatever the caller sets, so the model is told
# the same rule the guard enforces.
NON_CLINICAL_INSTRUCTION = (
    "This service is for research, education, benchmarking and prompt engineering only. "
    "Never give a diagnosis, treatment plan, triage decision, or medication or dosing advice "
    "for a real person; if asked, say that a qualified clinician must make that decision."
)


class Part(enum.Enum):
    MARKUP = "markup"  # our chat markup: control tokens in it are real
    TEXT = "text"  # the caller's words: never parsed for control tokens
    IMAGE = "image"  # where an image's soft tokens go


@dataclass(frozen=True)
class Segment:
    part: Part
    text: str = ""


def effective_system_prompt(system_prompt: str | None) -> str:
    """The caller's system prompt (or the default) followed by the non-clinical instruction."""
    base = (system_prompt or "").strip() or DEFAULT_SYSTEM_PROMPT
    return f"{base}\n\n{NON_CLINICAL_INSTRUCTION}"


def chat_segments(prompt: str, *, system_prompt: str | None, image_count: int = 0) -> list[Segment]:
    """One user turn (system text first, then the prompt and the images) and the model's cue.

    The images follow the text, as in MedGemma's own examples, unless the prompt has one
    IMAGE_MARKER per image: then each goes where its marker is (text around it trimmed, as the
    chat template trims each text item).
    """
    segments = [
        Segment(Part.MARKUP, f"{BOS}{START_OF_TURN}user\n"),
        Segment(Part.TEXT, effective_system_prompt(system_prompt).strip() + "\n\n"),
    ]
    markers = image_markers(prompt) if image_count else 0
    if markers not in (0, image_count):
        raise ValueError(f"{markers} image markers for {image_count} images")  # request.py checks it first
    pieces = prompt.split(IMAGE_MARKER) if markers else [prompt]
    for index, piece in enumerate(pieces):
        if index:
            segments.append(Segment(Part.IMAGE))
        segments.append(Segment(Part.TEXT, piece.strip()))
    if not markers:
        segments.extend(Segment(Part.IMAGE) for _ in range(image_count))
    segments.append(Segment(Part.MARKUP, f"{END_OF_TURN}\n{START_OF_TURN}model\n"))
    return [segment for segment in segments if segment.part is Part.IMAGE or segment.text]


def image_markers(prompt: str) -> int:
    """How many images the prompt places."""
    return prompt.count(IMAGE_MARKER)


def render(segments: list[Segment]) -> str:
    """The segments as one string, images as `<start_of_image>` (for display and comparison)."""
    return "".join(START_OF_IMAGE if s.part is Part.IMAGE else s.text for s in segments)


def chat_template() -> str:
    """The same format as a Jinja chat template, saved with weights we build (the demo model), so
    `apply_chat_template` on them renders what `chat_segments` does."""
    return CHAT_TEMPLATE_FILE.read_text()
