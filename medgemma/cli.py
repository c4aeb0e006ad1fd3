"""Command line: `python -m medgemma predict -i prompt="..." -i image=@xray.png` and friends."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import UserError, WeightsError
from .request import GenerationRequest

EXIT_USER_ERROR = 2
EXIT_WEIGHTS_ERROR = 3
EXIT_INTERRUPTED = 130

_FIELDS = {f.name: f for f in dataclasses.fields(GenerationRequest)}
_FILE_INPUTS = {"image", "images"}
_LIST_INPUTS = {"images"}  # repeat the key for each: -i images=@a.png -i images=@b.dcm


def parse_inputs(pairs: list[str]) -> GenerationRequest:
    """Turn cog-style `key=value` pairs (`key=@path` for files) into a validated request."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise UserError(f"input {pair!r} is not key=value, e.g. -i prompt=\"Describe this\".")
        if key not in _FIELDS:
            close = difflib.get_close_matches(key, _FIELDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UserError(f"unknown input {key!r}.{hint} Inputs: {', '.join(_FIELDS)}.")
        value = _convert(key, raw)
        if key in _LIST_INPUTS:
            values[key] = (*values.get(key, ()), value)
        else:
            values[key] = value
    if "prompt" not in values:
        raise UserError("prompt is required: -i prompt=\"...\".")
    return GenerationRequest(**values)


def _convert(key: str, raw: str) -> Any:
    if key in _FILE_INPUTS:
        if not raw.startswith("@"):
            raise UserError(f"{key} takes a file: -i {key}=@path/to/file.png")
        path = Path(raw[1:]).expanduser()
        if not path.is_file():
            raise UserError(f"{key}: no file at {path}.")
        return path
    if raw.startswith("@"):
        raise UserError(f"{key} is not a file input; only {', '.join(sorted(_FILE_INPUTS))} take @path.")
    kind = _FIELDS[key].type
    try:
        if "int" in str(kind):
            return int(raw)
        if "float" in str(kind):
            return float(raw)
    except ValueError:
        raise UserError(f"{key} must be a number; got {raw!r}.") from None
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WEIGHTS_ERROR


def _predict(args: argparse.Namespace) -> int:
    from .config import ServiceConfig
    from .loader import load_service

    request = parse_inputs(args.input)  # fail on bad inputs before loading a model
    config = ServiceConfig.from_env(weights=args.weights)
    # One request: no batching machinery to warm up or keep running.
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, continuous=False, warm_up=False))
    with load_service(config) as service:
        if service.demo_notice:
            print(f"note: {service.demo_notice}", file=sys.stderr)
        stop = threading.Event()
        answer = service.answer(request, stop)
        try:
            for piece in answer:
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:
            stop.set()
            print("\ninterrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        sys.stdout.write("\n")
        print(json.dumps(answer.metrics()), file=sys.stderr)
    return 0


def _guard(args: argparse.Namespace) -> int:
    from .guard import screen

    verdict = screen(args.prompt, system_prompt=args.system_prompt, has_image=args.image)
    print(json.dumps(verdict.as_dict(), ensure_ascii=False, indent=2))
    return 0


def _train_guard(args: argparse.Namespace) -> int:
    from .guard.train import main as train

    weights, card = train(args.out, use_cache=not args.no_cache)
    print(f"wrote {weights} and {card}")
    return 0


def _check_weights(args: argparse.Namespace) -> int:
    from .weights import WeightsKind, check_weights_dir, verify_safetensors, weights_kind

    check_weights_dir(args.path)
    verify_safetensors(args.path)
    if weights_kind(args.path) is not WeightsKind.MEDGEMMA:
        raise WeightsError(f"{args.path} holds the demo model, not MedGemma: production images must not ship it.")
    print(f"{args.path}: complete MedGemma weights")
    return 0


def _download(args: argparse.Namespace) -> int:
    from .download import download_medgemma

    path = download_medgemma(args.dest, revision=args.revision)
    print(f"MedGemma weights verified in {path}")
    return 0


def _build_demo(args: argparse.Namespace) -> int:
    from .config import ServiceConfig
    from .demo import build_demo_model
    from .weights import MEDGEMMA_DIRNAME, check_weights_dir

    if args.if_missing:
        config = ServiceConfig.from_env()
        if config.weights_path is not None or (config.weights_root / MEDGEMMA_DIRNAME).exists():
            return 0  # real weights will be served; no demo needed
        try:
            check_weights_dir(args.dest)
            return 0
        except WeightsError:
            pass
    print(f"building the demo model into {args.dest} (about a minute, once)", file=sys.stderr)
    print(f"demo model written to {build_demo_model(args.dest)}", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    from .config import DEFAULT_WEIGHTS_ROOT
    from .weights import DEMO_DIRNAME, MEDGEMMA_DIRNAME

    parser = argparse.ArgumentParser(prog="python -m medgemma", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="command")

    predict = commands.add_parser("predict", help="run one prediction, streaming to stdout (like `cog predict`)")
    predict.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                         help="an input, e.g. -i prompt=\"...\" -i image=@xray.png -i max_new_tokens=64; several "
                         "images: -i images=@prior.png -i images=@current.dcm")
    predict.add_argument("--weights", help="weights directory (default: resolved as the server does)")
    predict.add_argument("-v", "--verbose", action="store_true", help="log model loading")
    predict.set_defaults(handler=_predict)

    guard = commands.add_parser("guard", help="print the non-clinical guard's verdict on a prompt as JSON")
    guard.add_argument("prompt")
    guard.add_argument("--system-prompt")
    guard.add_argument("--image", action="store_true", help="screen as if an image were attached")
    guard.set_defaults(handler=_guard)

    train = commands.add_parser("train-guard", help="retrain the guard from its corpus and ../shared/guard")
    train.add_argument("--out", type=Path, help="write the artifact here instead of medgemma/guard/artifact/")
    train.add_argument("--no-cache", action="store_true", help="recompute every embedding")
    train.add_argument("-v", "--verbose", action="store_true", help="log progress")
    train.set_defaults(handler=_train_guard)

    check = commands.add_parser("check-weights", help="exit non-zero unless a directory holds complete MedGemma "
                                "weights (run before `cog build`)")
    check.add_argument("path", type=Path, nargs="?", default=DEFAULT_WEIGHTS_ROOT / MEDGEMMA_DIRNAME)
    check.set_defaults(handler=_check_weights)

    download = commands.add_parser("download", help="download and verify MedGemma 4B-IT (needs HF_TOKEN)")
    download.add_argument("--dest", type=Path, default=DEFAULT_WEIGHTS_ROOT / MEDGEMMA_DIRNAME)
    download.add_argument("--revision", help="a commit of the Hugging Face repository (default: latest)")
    download.add_argument("-v", "--verbose", action="store_true")
    download.set_defaults(handler=_download)

    demo = commands.add_parser("build-demo", help="build the embedded demo model (not MedGemma)")
    demo.add_argument("--dest", type=Path, default=DEFAULT_WEIGHTS_ROOT / DEMO_DIRNAME)
    demo.add_argument("--if-missing", action="store_true", help="do nothing if it (or MedGemma) is already there")
    demo.add_argument("-v", "--verbose", action="store_true")
    demo.set_defaults(handler=_build_demo)

    return parser
