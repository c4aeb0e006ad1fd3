from pathlib import Path

import pytest

from medgemma.cli import main, parse_inputs
from medgemma.errors import UserError


def test_parses_cog_style_inputs_with_types(tmp_path):
    image = tmp_path / "xray.png"
    image.write_bytes(b"fake")
    request = parse_inputs(["prompt=Describe this", f"image=@{image}", "max_new_tokens=64",
                            "temperature=0.5", "seed=7"])
    assert request.prompt == "Describe this"
    assert request.image == Path(image)
    assert (request.max_new_tokens, request.temperature, request.seed) == (64, 0.5, 7)


def test_value_may_contain_equals_signs():
    assert parse_inputs(["prompt=a=b"]).prompt == "a=b"


def test_unknown_input_suggests_the_closest():
    with pytest.raises(UserError, match="Did you mean 'max_new_tokens'"):
        parse_inputs(["prompt=x", "max_tokens=5"])


def test_prompt_is_required():
    with pytest.raises(UserError, match="prompt is required"):
        parse_inputs(["max_new_tokens=5"])


def test_image_needs_at_sign_and_existing_file(tmp_path):
    with pytest.raises(UserError, match="@path"):
        parse_inputs(["prompt=x", "image=xray.png"])
    with pytest.raises(UserError, match="no file"):
        parse_inputs(["prompt=x", f"image=@{tmp_path / 'missing.png'}"])


def test_non_number_is_a_user_error():
    with pytest.raises(UserError, match="must be a number"):
        parse_inputs(["prompt=x", "top_k=many"])


def test_bad_input_exits_2_before_loading_any_model(capsys):
    assert main(["predict", "-i", "prompt=x", "-i", "temprature=1"]) == 2
    assert "Did you mean 'temperature'" in capsys.readouterr().err


def test_images_repeat_the_key_in_order(tmp_path):
    first, second = tmp_path / "prior.png", tmp_path / "current.dcm"
    first.write_bytes(b"a")
    second.write_bytes(b"b")
    request = parse_inputs(["prompt=Compare", f"images=@{first}", f"images=@{second}", "frame=3"])
    assert request.images == (first, second) and request.frame == 3
