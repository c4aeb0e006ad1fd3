import json
from pathlib import Path

import pytest

from medgemma.config import ServiceConfig
from medgemma.errors import WeightsError
from medgemma.weights import (
    DEMO_DIRNAME,
    MARKER_FILE,
    MEDGEMMA_DIRNAME,
    WeightsKind,
    check_weights_dir,
    resolve_weights,
)


def make_weights_dir(path: Path, *, demo: bool = False) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    path.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "processor_config.json"):
        (path / name).write_text("{}")
    save_file({"weight": np.zeros((4, 4), dtype=np.float32)}, str(path / "model.safetensors"))
    if demo:
        (path / MARKER_FILE).write_text(json.dumps({"kind": "demo"}))
    return path


class DemoBuilder:
    def __init__(self):
        self.built: list[Path] = []

    def __call__(self, target: Path) -> Path:
        self.built.append(target)
        return make_weights_dir(target, demo=True)


def test_explicit_path_wins(tmp_path):
    explicit = make_weights_dir(tmp_path / "mine")
    make_weights_dir(tmp_path / "root" / MEDGEMMA_DIRNAME)
    config = ServiceConfig(weights_path=explicit, weights_root=tmp_path / "root")
    resolved = resolve_weights(config, DemoBuilder())
    assert resolved.path == explicit and resolved.kind is WeightsKind.MEDGEMMA


def test_default_medgemma_dir_before_demo(tmp_path):
    make_weights_dir(tmp_path / MEDGEMMA_DIRNAME)
    builder = DemoBuilder()
    resolved = resolve_weights(ServiceConfig(weights_root=tmp_path), builder)
    assert resolved.path == tmp_path / MEDGEMMA_DIRNAME and not builder.built


def test_demo_is_built_once_then_reused(tmp_path):
    builder = DemoBuilder()
    first = resolve_weights(ServiceConfig(weights_root=tmp_path), builder)
    second = resolve_weights(ServiceConfig(weights_root=tmp_path), builder)
    assert first.is_demo and second.path == tmp_path / DEMO_DIRNAME
    assert builder.built == [tmp_path / DEMO_DIRNAME]


def test_strict_mode_never_falls_back_to_demo(tmp_path):
    builder = DemoBuilder()
    with pytest.raises(WeightsError, match="python -m medgemma download") as error:
        resolve_weights(ServiceConfig(weights_root=tmp_path, strict=True), builder)
    assert "HF_TOKEN" in str(error.value) and not builder.built


def test_strict_mode_refuses_a_demo_dir_given_explicitly(tmp_path):
    demo = make_weights_dir(tmp_path / "demo", demo=True)
    with pytest.raises(WeightsError, match="demo model"):
        resolve_weights(ServiceConfig(weights_path=demo, strict=True), DemoBuilder())


def test_broken_dir_lists_every_missing_file(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    (broken / "model-00001-of-00002.safetensors").write_text("")
    with pytest.raises(WeightsError) as error:
        check_weights_dir(broken)
    message = str(error.value)
    assert "tokenizer.json" in message and "preprocessor_config.json" in message
    assert "model-00002-of-00002.safetensors" in message and "model-00001" not in message


def test_missing_explicit_dir_explains_how_to_get_weights(tmp_path):
    with pytest.raises(WeightsError, match="does not exist.*\n.*Provide MedGemma"):
        resolve_weights(ServiceConfig(weights_path=tmp_path / "nope", strict=True), DemoBuilder())


def test_url_weights_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="local directory"):
        resolve_weights(ServiceConfig(weights_path=Path("https://example.com/w.tar")), DemoBuilder())


def test_config_from_env_reads_the_edge_variables(tmp_path):
    config = ServiceConfig.from_env({"MEDGEMMA_STRICT": "1", "MEDGEMMA_WEIGHTS": str(tmp_path),
                                     "MEDGEMMA_DEVICE": "CPU"})
    assert config.strict and config.weights_path == tmp_path and config.device == "cpu"
    assert ServiceConfig.from_env({}, weights=tmp_path / "cog").weights_path == tmp_path / "cog"
    with pytest.raises(ValueError, match="MEDGEMMA_STRICT"):
        ServiceConfig.from_env({"MEDGEMMA_STRICT": "maybe"})


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_a_corrupted_weights_file_fails_setup_naming_the_file(tmp_path, damage):
    path = make_weights_dir(tmp_path / MEDGEMMA_DIRNAME)
    shard = path / "model.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 20] if damage == "truncate" else b"\xff" * len(data))
    with pytest.raises(WeightsError, match="model.safetensors is corrupted or truncated"):
        resolve_weights(ServiceConfig(weights_root=tmp_path, strict=True), build_demo=DemoBuilder())


def test_check_weights_command_accepts_complete_medgemma_and_refuses_the_demo(tmp_path, capsys):
    from medgemma.cli import EXIT_WEIGHTS_ERROR, main

    assert main(["check-weights", str(make_weights_dir(tmp_path / "real"))]) == 0
    assert main(["check-weights", str(make_weights_dir(tmp_path / "demo", demo=True))]) == EXIT_WEIGHTS_ERROR
    assert main(["check-weights", str(tmp_path / "missing")]) == EXIT_WEIGHTS_ERROR
    assert "demo model" in capsys.readouterr().err
