"""Finding the weights to serve, and checking a weights directory is complete.

Order: an explicit path (MEDGEMMA_WEIGHTS or Cog's weights), then
weights/medgemma-4b-it, then, outside strict mode only, the embedded demo model.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import ENV_STRICT, ENV_WEIGHTS, ServiceConfig
from .errors import WeightsError

logger = logging.getLogger(__name__)

MEDGEMMA_REPO_ID = "google/medgemma-4b-it"
MEDGEMMA_DIRNAME = "medgemma-4b-it"
DEMO_DIRNAME = "demo-gemma3-270m"
MARKER_FILE = "medgemma_weights.json"  # written by our demo builder; real MedGemma has none

HOW_TO_PROVIDE_WEIGHTS = f"""\
Provide MedGemma 4B-IT weights in one of these ways:
  1. Accept the Health AI Developer Foundations terms at https://huggingface.co/{MEDGEMMA_REPO_ID},
     create a read token, then run:
         HF_TOKEN=hf_... python -m medgemma download
     which writes and verifies weights/{MEDGEMMA_DIRNAME}/.
  2. Or point {ENV_WEIGHTS} (or Cog's weights) at a local directory holding config.json,
     the *.safetensors files, the tokenizer and the processor config of {MEDGEMMA_REPO_ID}."""


class WeightsKind(enum.Enum):
    MEDGEMMA = "medgemma"
    DEMO = "demo"


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    kind: WeightsKind
    origin: str  # how it was found, for the setup log

    @property
    def is_demo(self) -> bool:
        return self.kind is WeightsKind.DEMO


def resolve_weights(config: ServiceConfig, build_demo: Callable[[Path], Path]) -> ResolvedWeights:
    """Pick the weights directory to load; `build_demo(target_dir)` makes the demo model if needed."""
    if config.weights_path is not None:
        path = config.weights_path
        if str(path).startswith(("http://", "https://")):
            raise WeightsError(f"weights must be a local directory, not a URL.\n{HOW_TO_PROVIDE_WEIGHTS}")
        return _checked(path, f"explicit path ({ENV_WEIGHTS} or Cog weights)", config)

    default = config.weights_root / MEDGEMMA_DIRNAME
    if default.exists():
        return _checked(default, f"weights/{MEDGEMMA_DIRNAME}", config)

    if config.strict:
        raise WeightsError(f"no MedGemma weights found at {default} ({ENV_STRICT}=1 forbids the demo model).\n"
                           f"{HOW_TO_PROVIDE_WEIGHTS}")

    demo = config.weights_root / DEMO_DIRNAME
    if not _is_complete(demo):
        logger.warning("building the demo model into %s (once; later starts load it directly)", demo)
        build_demo(demo)
    return _checked(demo, "embedded demo model (not MedGemma)", config)


def check_weights_dir(path: Path) -> None:
    """Raise WeightsError naming every file a loadable weights directory lacks."""
    if not path.is_dir():
        raise WeightsError(f"weights directory {path} does not exist.\n{HOW_TO_PROVIDE_WEIGHTS}")
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        missing.append("tokenizer.json (or tokenizer.model)")
    if not any((path / name).is_file() for name in ("processor_config.json", "preprocessor_config.json")):
        missing.append("preprocessor_config.json (or processor_config.json)")
    missing.extend(_missing_safetensors(path))
    if missing:
        raise WeightsError(
            f"weights directory {path} is incomplete; missing: {', '.join(missing)}.\n{HOW_TO_PROVIDE_WEIGHTS}"
        )


def verify_safetensors(path: Path) -> None:
    """Each *.safetensors file has a readable header and all the bytes it declares; the error names
    the file (a truncated download or a corrupted disk otherwise fails deep inside the loader)."""
    for file in sorted(path.glob("*.safetensors")):
        try:
            with file.open("rb") as handle:
                header_size = int.from_bytes(handle.read(8), "little")
                if not 0 < header_size < 100 * 2**20:
                    raise ValueError("no header")
                header = json.loads(handle.read(header_size))
            end = max((t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"), default=0)
            if file.stat().st_size < 8 + header_size + end:
                raise ValueError(f"{file.stat().st_size} bytes, {8 + header_size + end} declared")
        except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
            raise WeightsError(f"weights file {file} is corrupted or truncated ({error}); download it again."
                               f"\n{HOW_TO_PROVIDE_WEIGHTS}") from None


def weights_kind(path: Path) -> WeightsKind:
    marker = path / MARKER_FILE
    if marker.is_file():
        try:
            return WeightsKind(json.loads(marker.read_text())["kind"])
        except (ValueError, KeyError, TypeError):
            raise WeightsError(f"{marker} is unreadable; delete {path} and let it be rebuilt.") from None
    return WeightsKind.MEDGEMMA


def _missing_safetensors(path: Path) -> list[str]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError):
            return ["a readable model.safetensors.index.json"]
        return sorted(shard for shard in shards if not (path / shard).is_file())
    if (path / "model.safetensors").is_file():
        return []
    return ["model.safetensors (or model.safetensors.index.json and its shards)"]


def _is_complete(path: Path) -> bool:
    try:
        check_weights_dir(path)
    except WeightsError:
        return False
    return True


def _checked(path: Path, origin: str, config: ServiceConfig) -> ResolvedWeights:
    check_weights_dir(path)
    verify_safetensors(path)
    kind = weights_kind(path)
    if kind is WeightsKind.DEMO and config.strict:
        raise WeightsError(f"{path} holds the demo model, which {ENV_STRICT}=1 forbids.\n{HOW_TO_PROVIDE_WEIGHTS}")
    return ResolvedWeights(path=path, kind=kind, origin=origin)
