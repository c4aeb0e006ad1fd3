"""`python -m medgemma download`: fetch the gated MedGemma 4B-IT weights and verify every file."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsError
from .weights import MEDGEMMA_REPO_ID, check_weights_dir

logger = logging.getLogger(__name__)

TERMS_PAGE = f"https://huggingface.co/{MEDGEMMA_REPO_ID}"
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt"]


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # known for LFS files (the weights); None for small git files


def download_medgemma(dest: Path, *, token: str | None = None, revision: str | None = None) -> Path:
    """Download into `dest` with a progress bar, then verify sizes, checksums and completeness."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    token = token or os.environ.get("HF_TOKEN")
    if not token:
        raise WeightsError(
            f"MedGemma is gated: accept its terms at {TERMS_PAGE}, create a read token at "
            "https://huggingface.co/settings/tokens, then run: HF_TOKEN=hf_... python -m medgemma download"
        )
    try:
        info = HfApi(token=token).model_info(MEDGEMMA_REPO_ID, revision=revision, files_metadata=True)
        snapshot_download(MEDGEMMA_REPO_ID, revision=info.sha, local_dir=dest, token=token,
                          allow_patterns=ALLOW_PATTERNS)
    except GatedRepoError:
        raise WeightsError(f"this token's account has not accepted MedGemma's terms: accept them at {TERMS_PAGE}.")
    except RepositoryNotFoundError:
        raise WeightsError("the token was refused (401/404): check HF_TOKEN is a valid read token.")
    except (HfHubHTTPError, OSError) as error:
        raise WeightsError(f"download failed ({type(error).__name__}: {error}); rerun to resume.") from error
    expected = [
        RemoteFile(s.rfilename, s.size or 0, s.lfs.sha256 if s.lfs else None)
        for s in info.siblings
        if any(Path(s.rfilename).match(pattern) for pattern in ALLOW_PATTERNS)
    ]
    verify_download(Path(dest), expected)
    return Path(dest)


def verify_download(dest: Path, expected: list[RemoteFile]) -> None:
    """Every expected file present with the right size and, where known, SHA-256; then loadable."""
    problems = []
    for remote in expected:
        local = dest / remote.name
        if not local.is_file():
            problems.append(f"{remote.name} is missing")
        elif remote.size and local.stat().st_size != remote.size:
            problems.append(f"{remote.name} has {local.stat().st_size} bytes, expected {remote.size}")
        elif remote.sha256 and _sha256(local) != remote.sha256:
            problems.append(f"{remote.name} fails its SHA-256 check")
    if problems:
        raise WeightsError(f"download in {dest} is not intact: {'; '.join(problems)}. Rerun the download.")
    check_weights_dir(dest)
    logger.info("verified %d files in %s", len(expected), dest)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()
