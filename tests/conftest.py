"""Shared test fixtures: an isolated HF cache, no network, and the real data folder."""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from pathlib import Path

import pytest

# Set before transformers / huggingface_hub / datasets are imported by any test module.
_HF_HOME = tempfile.mkdtemp(prefix="hf_rec_test_hf_home_")
os.environ["HF_HOME"] = _HF_HOME
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The loopback Hub server fixtures (hub_server, hub_api, hub_repo_id, hub_offline) for every test module.
pytest_plugins = ["hub_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HF_REC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):  # AF_UNIX paths and the like
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: would need DNS, i.e. the network


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise RuntimeError(f"test tried to open a network connection to {address!r}; tests must stay on loopback")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise RuntimeError(f"test tried to open a network connection to {address!r}; tests must stay on loopback")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


def _dataset_dir(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name!r} not found at {path} (set HF_REC_SHARED_DATA to the shared/data folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not found at {SHARED_DATA} (set HF_REC_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    return _dataset_dir("ml-100k")


@pytest.fixture(scope="session")
def ml1m_dir() -> Path:
    return _dataset_dir("ml-1m")


@pytest.fixture(scope="session")
def scientific_dir() -> Path:
    return _dataset_dir("amazon-scientific")


@pytest.fixture(scope="session")
def beauty_dir() -> Path:
    return _dataset_dir("amazon-beauty")
