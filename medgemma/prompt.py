"""Gemma 3 chat prompts, as pure functions.

Gemma 3 has no system role of its own: its chat template puts the system text at
the start of the first user turn, followed by a blank line. Turns look like

    <bos><start_of_turn>user
    {system}\n\n{text}<start_of_image><end_of_turn>
    <start_of_turn>model

and the processor later expands `<start_of_image>` into the 256 image soft tokens.
"""

from __future__ import annotations

from typing import Any

BOS = "<bos>"
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"
START_OF_IMAGE = "<start_of_image>"

DEFAULT_SYSTEM_PROMPT = "You are a helpful medical AI assistant for research and education."

# Always appended to the system prompt, whatever the caller sets, so the model is told
# the same rule the guard enforces.
NON_CLINICAL_INSTRUCTION = (
    "This service is for research, education, benchmarking and prompt engineering only. "
    "Never give a diagnosis, treatment plan, triage decision, or medication or dosing advice "
    "for a real person; if asked, say that a qualified clinician must make that decision."
)

Message = dict[str, Any]


def effective_system_prompt(system_prompt: str | None) -> str:
    """The caller's system prompt (or the default) followed by the non-clinical instruction."""
    base = (system_prompt or "").strip() or DEFAULT_SYSTEM_PROMPT
    return f"{base}\n\n{NON_CLINICAL_INSTRUCTION}"


def build_messages(prompt: str, *, system_prompt: str | None, has_image: bool) -> list[Message]:
    """Chat messages in the structured form Hugging Face chat templates take.

    The image follows the text in the user turn, as in MedGemma's own examples.
    """
    user_content: list[dict[str, str]] = [{"type": "text", "text": prompt}]
    if has_image:
        user_content.append({"type": "image"})
    return [
        {"role": "system", "content": [{"type": "text", "text": effective_system_prompt(system_prompt)}]},
        {"role": "user", "content": user_content},
    ]


def render_gemma3(messages: list[Message], *, add_generation_prompt: bool = True) -> str:
    """Render messages in the Gemma 3 turn format, for weights that ship no chat template."""
    if not messages:
        raise ValueError("at least one message is needed")
    first_user_prefix = ""
    turns = messages
    if messages[0]["role"] == "system":
        first_user_prefix = _render_content(messages[0]["content"]) + "\n\n"
        turns = messages[1:]
    parts = [BOS]
    for index, message in enumerate(turns):
        role = message["role"]
        if role not in ("user", "assistant"):
            raise ValueError(f"unsupported role {role!r}: only system, user and assistant")
        if (role == "user") != (index % 2 == 0):
            raise ValueError("roles must alternate user/assistant/user/...")
        prefix = first_user_prefix if index == 0 else ""
        gemma_role = "model" if role == "assistant" else "user"
        parts.append(f"{START_OF_TURN}{gemma_role}\n{prefix}{_render_content(message['content'])}{END_OF_TURN}\n")
    if add_generation_prompt:
        parts.append(f"{START_OF_TURN}model\n")
    return "".join(parts)


def _render_content(content: str | list[dict[str, str]]) -> str:
    if isinstance(content, str):
        return content.strip()
    rendered = []
    for item in content:
        if item["type"] == "text":
            rendered.append(item["text"].strip())
        elif item["type"] == "image":
            rendered.append(START_OF_IMAGE)
        else:
            raise ValueError(f"unsupported content type {item['type']!r}: only text and image")
    return "".join(rendered)
