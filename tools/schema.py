"""The OpenAPI schema of predict.py, as `cog build` would write it to .cog/openapi_schema.json.

    python -m tools.schema          # write it
    python -m tools.schema --check  # exit 1 if the committed one is out of date

The Cog server (coglet) validates inputs and enables streaming only from that file, so the project
generates it and a test fails if it drifts. Development tooling: it uses cog's private inspector,
so it stays out of the runtime package.

One deliberate difference from `cog build`: an optional input is written as `anyOf` with null
rather than `nullable: true`, because coglet 0.23.1 validates with JSON Schema, which ignores
`nullable`, and so answers 422 to an explicit `null` (SECURITY.md has the reproduction).
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

PREDICT_FILE = REPO_ROOT / "predict.py"
RUNNER_CLASS = "Runner"
SCHEMA_FILE = REPO_ROOT / ".cog" / "openapi_schema.json"

_JSON_RESPONSE = {"application/json": {"schema": {}}}
_VALIDATION_ERROR = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def build_schema(predict_file: Path = PREDICT_FILE, runner_class: str = RUNNER_CLASS) -> dict[str, Any]:
    """Inspect the runner with cog's own inspector and lay out the OpenAPI 3.0.2 document."""
    import cog
    from cog import _inspector

    sys.path.insert(0, str(predict_file.parent))
    sys.modules.pop(predict_file.stem, None)  # always inspect the file as it is now
    try:
        info = _inspector.create_predictor(predict_file.stem, runner_class)
        runner = getattr(sys.modules.pop(predict_file.stem), runner_class)
    finally:
        sys.path.remove(str(predict_file.parent))
    declared = inspect.signature(runner.run).parameters

    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in info.inputs.items():
        properties[name] = _input_property(name, field, declared[name].default)
        if field.default is None and field.type.repetition.name == "REQUIRED":
            required.append(name)
    input_schema: dict[str, Any] = {"title": "Input", "type": "object", "properties": properties}
    if required:
        input_schema["required"] = required

    predict_operation: dict[str, Any] = {
        "summary": "Predict",
        "description": "Run a single prediction on the model",
        "operationId": "predict_predictions_post",
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionRequest"}}}},
        "responses": {
            "200": {
                "description": "Successful Response",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionResponse"}}},
            },
            "422": _VALIDATION_ERROR,
        },
    }
    if _is_streaming(predict_file, runner_class):
        predict_operation["x-cog-streaming"] = True

    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": cog.__version__},
        "paths": {
            "/": {"get": _plain_get("Root", "root__get")},
            "/health-check": {"get": _plain_get("Healthcheck", "healthcheck_health_check_get")},
            "/predictions": {"post": predict_operation},
            "/predictions/{prediction_id}/cancel": {"post": _cancel_operation()},
        },
        "components": {"schemas": _components(input_schema, info.output.json_type())},
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(build_schema()))
    return path


def schema_is_current(path: Path = SCHEMA_FILE) -> bool:
    return path.is_file() and path.read_text() == render(build_schema())


def _input_property(name: str, field, declared) -> dict[str, Any]:
    integer = field.type.primitive.name == "INTEGER"
    prop: dict[str, Any] = {"x-order": field.order, "title": name.replace("_", " ").title()}
    prop.update(field.type.json_type())
    nullable = field.type.repetition.name in ("OPTIONAL", "OPTIONAL_REPEATED")
    if field.default is not None:
        prop["default"] = field.default
    if nullable:  # see the module docstring
        prop["anyOf"] = [{key: prop.pop(key) for key in ("type", "format") if key in prop}, {"type": "null"}]
    if field.description:
        prop["description"] = field.description
    for key, value in (("minimum", field.ge), ("maximum", field.le)):
        if value is not None:
            prop[key] = int(value) if integer and float(value).is_integer() else value
    for key, value in (("minLength", field.min_length), ("maxLength", field.max_length), ("pattern", field.regex)):
        if value is not None:
            prop[key] = value
    accept = getattr(declared, "accept", None)  # cog keeps it on Input() but not in its inspector
    if accept:
        prop["x-cog-accept"] = accept
    return prop


def _components(input_schema: dict[str, Any], output_schema: dict[str, Any]) -> dict[str, Any]:
    def typed(title: str, kind: str, **extra: Any) -> dict[str, Any]:
        return {"title": title, "type": kind, **extra}

    return {
        "Input": input_schema,
        "Output": output_schema,
        "PredictionRequest": typed("PredictionRequest", "object", properties={
            "id": typed("Id", "string"),
            "input": {"$ref": "#/components/schemas/Input"},
        }),
        "PredictionResponse": typed("PredictionResponse", "object", properties={
            "input": {"$ref": "#/components/schemas/Input"},
            "output": {"$ref": "#/components/schemas/Output"},
            "id": typed("Id", "string"),
            "version": typed("Version", "string"),
            "created_at": typed("Created At", "string", format="date-time"),
            "started_at": typed("Started At", "string", format="date-time"),
            "completed_at": typed("Completed At", "string", format="date-time"),
            "status": typed("Status", "string"),
            "error": typed("Error", "string"),
            "logs": typed("Logs", "string"),
            "metrics": typed("Metrics", "object"),
        }),
        "Status": {
            "title": "Status",
            "description": "An enumeration.",
            "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
            "type": "string",
        },
        "HTTPValidationError": typed("HTTPValidationError", "object", properties={
            "detail": typed("Detail", "array", items={"$ref": "#/components/schemas/ValidationError"}),
        }),
        "ValidationError": {
            "title": "ValidationError",
            "required": ["loc", "msg", "type"],
            "type": "object",
            "properties": {
                "loc": typed("Location", "array", items={"anyOf": [{"type": "string"}, {"type": "integer"}]}),
                "msg": typed("Message", "string"),
                "type": typed("Error Type", "string"),
            },
        },
    }


def _plain_get(summary: str, operation_id: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "operationId": operation_id,
        "responses": {"200": {"description": "Successful Response", "content": _JSON_RESPONSE}},
    }


def _cancel_operation() -> dict[str, Any]:
    return {
        "summary": "Cancel",
        "operationId": "cancel_predictions__prediction_id__cancel_post",
        "parameters": [{"required": True, "schema": {"title": "Prediction Id", "type": "string"},
                        "name": "prediction_id", "in": "path"}],
        "responses": {"200": {"description": "Successful Response", "content": _JSON_RESPONSE},
                      "422": _VALIDATION_ERROR},
    }


def _is_streaming(predict_file: Path, runner_class: str) -> bool:
    """Whether run() carries @cog.streaming (a no-op at run time, so read from the source as cog does)."""
    tree = ast.parse(predict_file.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == runner_class:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "run":
                    return any(_decorator_name(d) in ("cog.streaming", "streaming") for d in item.decorator_list)
    return False


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.schema", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    args = parser.parse_args(argv)
    if args.check:
        if schema_is_current():
            return 0
        print(f"{SCHEMA_FILE} is out of date with predict.py: run `python -m tools.schema`", file=sys.stderr)
        return 1
    print(f"wrote {write_schema()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
