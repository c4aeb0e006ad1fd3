import hashlib

import pytest

from medgemma.download import RemoteFile, verify_download
from medgemma.errors import WeightsError


def populate(dest):
    dest.mkdir()
    files = {"config.json": b"{}", "tokenizer.json": b"{}", "preprocessor_config.json": b"{}",
             "model.safetensors": b"weights-bytes"}
    for name, data in files.items():
        (dest / name).write_bytes(data)
    return [RemoteFile(name, len(data), hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else None)
            for name, data in files.items()]


def test_intact_download_passes(tmp_path):
    expected = populate(tmp_path / "w")
    verify_download(tmp_path / "w", expected)


def test_corrupt_weights_fail_the_checksum(tmp_path):
    expected = populate(tmp_path / "w")
    (tmp_path / "w" / "model.safetensors").write_bytes(b"weights-bytez")  # same size, other bytes
    with pytest.raises(WeightsError, match="SHA-256"):
        verify_download(tmp_path / "w", expected)


def test_missing_and_short_files_are_all_reported(tmp_path):
    expected = populate(tmp_path / "w")
    (tmp_path / "w" / "tokenizer.json").unlink()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"short")
    with pytest.raises(WeightsError, match="tokenizer.json is missing.*model.safetensors has 5 bytes"):
        verify_download(tmp_path / "w", expected)
