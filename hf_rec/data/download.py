"""Download + sha256 verification + safe extraction of the official dataset archives.

Files land under ``$HF_HOME/hf_rec/datasets/``. Downloads stream to a temporary file in the
destination folder and are renamed into place only once the checksum matches, so a failed or
corrupted download never leaves a file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_open

logger = logging.getLogger("hf_rec.data")

__all__ = [
    "DATASET_ARCHIVES",
    "DatasetArchive",
    "datasets_cache_dir",
    "download_and_verify",
    "extract_zip",
    "fetch_builtin_dataset",
    "sha256_file",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetArchive:
    url: str
    sha256: str
    folder: str  # the top-level folder inside the archive


# The sha256 values come from the project brief; they could not be re-derived in this
# (offline) workspace. A mismatch raises a ValueError naming both hashes, so a wrong value
# can never let a corrupted archive through silently.
DATASET_ARCHIVES: dict[str, DatasetArchive] = {
    "ml-100k": DatasetArchive(
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c2f1b9c",
        folder="ml-100k",
    ),
    "ml-1m": DatasetArchive(
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        folder="ml-1m",
    ),
}


def hf_home() -> Path:
    """``$HF_HOME`` read at call time (falls back to huggingface_hub's default)."""
    env = os.environ.get("HF_HOME")
    if env:
        return Path(env).expanduser()
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HOME)
    except Exception:  # pragma: no cover - huggingface_hub is a dependency
        return Path("~/.cache/huggingface").expanduser()


def datasets_cache_dir() -> Path:
    return hf_home() / "hf_rec" / "datasets"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_and_verify(url: str, sha256: str, dest: str | os.PathLike, *, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` and check its sha256.

    ``dest`` is the file path to create (if it is an existing directory, the URL's file name is
    used inside it). If ``dest`` already exists with the right checksum, nothing is downloaded.
    The data is written to a temporary file next to ``dest`` and renamed into place only when
    the checksum matches; on a mismatch the temporary file is deleted and ValueError names the
    expected and actual hashes.
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / (Path(urllib.request.urlparse(url).path).name or "download")
    expected = sha256.lower().strip()
    if dest.is_file():
        actual = sha256_file(dest)
        if actual == expected:
            logger.info("%s already present with the expected sha256", dest)
            return dest
        logger.warning("%s exists but its sha256 is %s, not %s: downloading again", dest, actual, expected)
    h = hashlib.sha256()
    size = 0
    logger.info("downloading %s -> %s", url, dest)
    # Appears at `dest` only when complete and verified: a failed or mismatching download leaves nothing behind.
    with atomic_open(dest, "wb", suffix=".part") as out, urllib.request.urlopen(url, timeout=timeout) as response:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
        actual = h.hexdigest()
        if actual != expected:
            raise ValueError(
                f"checksum mismatch for {url} ({size} bytes): expected sha256 {expected}, got {actual}; "
                "the download was discarded"
            )
    return dest


def extract_zip(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Extract ``archive`` into ``dest_dir`` safely (no absolute paths / ``..``); returns dest_dir.

    Extraction goes to a temporary folder first; each top-level entry is then renamed into place.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".extract.", dir=dest_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            root = tmp_dir.resolve()
            for member in zf.infolist():
                target = (tmp_dir / member.filename).resolve()
                if member.filename.startswith(("/", "\\")) or not target.is_relative_to(root):
                    raise ValueError(f"{archive}: refusing to extract unsafe path {member.filename!r}")
            zf.extractall(tmp_dir)
        for entry in tmp_dir.iterdir():
            final = dest_dir / entry.name
            if final.exists():
                if final.is_dir():
                    shutil.rmtree(final)
                else:
                    final.unlink()
            os.replace(entry, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return dest_dir


def _offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return False


def fetch_builtin_dataset(name: str, required: list[str] | None = None) -> Path:
    """Return the folder of built-in dataset ``name`` under the cache, downloading it if needed."""
    if name not in DATASET_ARCHIVES:
        raise ValueError(f"dataset {name!r} has no official single-file download; pass data_dir=")
    spec = DATASET_ARCHIVES[name]
    cache = datasets_cache_dir()
    folder = cache / spec.folder
    if folder.is_dir() and all((folder / f).is_file() for f in (required or [])):
        return folder
    if _offline():
        raise ValueError(
            f"dataset {name!r} is not in {folder} and offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); "
            f"pass data_dir= or set HF_REC_DATA_DIR"
        )
    archive = download_and_verify(spec.url, spec.sha256, cache / Path(urllib.request.urlparse(spec.url).path).name)
    extract_zip(archive, cache)
    if not folder.is_dir():
        raise ValueError(f"{archive}: the archive has no top-level folder {spec.folder!r}")
    return folder
