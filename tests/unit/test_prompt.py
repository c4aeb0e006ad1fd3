import jinja2
import pytest

from medgemma.demo import chat_template
from medgemma.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    NON_CLINICAL_INSTRUCTION,
    build_messages,
    effective_system_prompt,
    render_gemma3,
)


def test_renders_gemma3_turns_with_system_text_in_first_user_turn():
    messages = build_messages("Describe this X-ray", system_prompt="You are a radiology tutor.", has_image=True)
    assert render_gemma3(messages) == (
        "<bos><start_of_turn>user\n"
        f"You are a radiology tutor.\n\n{NON_CLINICAL_INSTRUCTION}\n\n"
        "Describe this X-ray<start_of_image><end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_text_only_prompt_has_no_image_marker():
    text = render_gemma3(build_messages("What is an ECG?", system_prompt=None, has_image=False))
    assert "<start_of_image>" not in text
    assert text.endswith("What is an ECG?<end_of_turn>\n<start_of_turn>model\n")


def test_default_system_prompt_when_blank():
    assert effective_system_prompt("   ") == f"{DEFAULT_SYSTEM_PROMPT}\n\n{NON_CLINICAL_INSTRUCTION}"


def test_non_clinical_instruction_survives_a_custom_system_prompt():
    assert effective_system_prompt("Answer in French.").endswith(NON_CLINICAL_INSTRUCTION)


def test_multi_turn_uses_model_role_and_prefixes_only_first_turn():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": " Hi "},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    assert render_gemma3(messages, add_generation_prompt=False) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
    )


def test_rejects_non_alternating_roles():
    with pytest.raises(ValueError, match="alternate"):
        render_gemma3([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


@pytest.mark.parametrize("has_image", [False, True])
@pytest.mark.parametrize("system_prompt", [None, "You are an expert radiologist."])
def test_shipped_jinja_template_matches_pure_renderer(has_image, system_prompt):
    messages = build_messages("  Explain the findings.  ", system_prompt=system_prompt, has_image=has_image)
    template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(chat_template())
    rendered = template.render(messages=messages, bos_token="<bos>", add_generation_prompt=True)
    assert rendered == render_gemma3(messages)
