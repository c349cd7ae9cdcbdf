"""Pytest fixtures and helpers to test Hub round trips against the loopback Hub (``tests/loopback_hub.py``).

Wire it with ``pytest_plugins = ["tests.hub_fixtures"]`` (or ``from tests.hub_fixtures import *``) in a conftest.

How the client is pointed at the loopback server
------------------------------------------------
``huggingface_hub`` reads ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` once, at import time, and copies them around; by the
time a fixture runs, test modules have usually imported ``transformers`` / ``huggingface_hub`` already. Setting the
environment variables alone is therefore not enough. :func:`hub_client_env` imports ``huggingface_hub`` first (so
the values captured at import are the suite-wide defaults) and then, with a ``pytest.MonkeyPatch`` that is undone on
exit, patches every import-time copy:

* ``huggingface_hub.constants.ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE`` (used by ``hf_hub_url`` /
  ``hf_hub_download``), ``HF_URL_HOSTS`` (trusted hosts) and ``HF_HUB_OFFLINE`` -- ``is_offline_mode()``, the
  request hook that raises ``OfflineModeIsEnabled`` and ``transformers``' offline checks all read this attribute at
  call time, so patching it re-enables online mode for the client;
* ``huggingface_hub.hf_api.api.endpoint`` -- the module-level ``HfApi()`` behind ``huggingface_hub.create_repo``,
  ``upload_file``, ``model_info`` ... captured the endpoint when it was built; same for ``hf_file_system.hffs``;
* ``transformers.utils.hub._hf_api`` -- transformers' cached ``HfApi`` singleton (used by ``push_to_hub``) is reset
  to ``None`` so it is rebuilt against the loopback endpoint (and reset again on exit);
* ``datasets.config.HF_ENDPOINT`` / ``HUB_DATASETS_URL`` / ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` if
  ``datasets`` is imported;
* the environment: ``HF_ENDPOINT``, ``HF_HUB_OFFLINE=0``, ``HF_DATASETS_OFFLINE=0``, a fake ``HF_TOKEN`` (read at call
  time by ``get_token()``), ``DISABLE_SAFETENSORS_CONVERSION=1`` and loopback in ``NO_PROXY`` -- for modules imported
  later and for subprocesses.

The shared ``httpx`` client is closed on entry and exit so no keep-alive connection or proxy setting leaks.

``hub_server`` is session-scoped, so once a test requests it the client stays pointed at the loopback Hub (online)
until the session ends. That is safe: every Hub call can only reach the loopback server (and conftest's socket guard
still blocks anything else). A test that needs offline mode back can request ``hub_offline``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from loopback_hub import FAKE_USER, LoopbackHub

__all__ = [
    "FAKE_TOKEN",
    "FAKE_USER",
    "hub_client_env",
    "fresh_process_env",
    "run_python_fresh",
    "unique_repo_id",
    "hub_server",
    "hub_api",
    "hub_repo_id",
    "hub_offline",
]

FAKE_TOKEN = "hf_loopbackFakeToken0123456789abcdefgh"

# Installed at the top of every fresh-process script: the same "loopback only" rule as tests/conftest.py.
_NETWORK_GUARD = textwrap.dedent(
    """
    import ipaddress as _ip, socket as _socket
    def _hf_rec_is_loopback(address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, bytes):
            host = host.decode()
        if not isinstance(host, str) or host in ("localhost", ""):
            return True
        try:
            return _ip.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False
    def _hf_rec_guard(real):
        def guarded(self, address):
            if self.family in (_socket.AF_INET, _socket.AF_INET6) and not _hf_rec_is_loopback(address):
                raise RuntimeError(f"fresh test process tried to reach {address!r}; tests must stay on loopback")
            return real(self, address)
        return guarded
    _socket.socket.connect = _hf_rec_guard(_socket.socket.connect)
    _socket.socket.connect_ex = _hf_rec_guard(_socket.socket.connect_ex)
    del _hf_rec_guard
    """
)


def _no_proxy_value(host: str) -> str:
    current = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    items = [x for x in current.split(",") if x]
    for extra in (host, "127.0.0.1", "localhost", "::1"):
        if extra and extra not in items:
            items.append(extra)
    return ",".join(items)


@contextlib.contextmanager
def hub_client_env(endpoint: str, *, offline: bool = False, token: str | None = FAKE_TOKEN) -> Iterator[None]:
    """Point ``huggingface_hub`` / ``transformers`` / ``datasets`` (imported or not yet) at ``endpoint``.

    Everything is restored on exit. See the module docstring for the list of patched attributes.
    """
    # Import first: whatever these modules capture at import time must be the suite defaults, which we then patch.
    import huggingface_hub.constants as hf_constants
    import huggingface_hub.hf_api as hf_api_module
    from huggingface_hub.utils import _http as hf_http

    endpoint = endpoint.rstrip("/")
    host = urlsplit(endpoint).hostname or ""
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("HF_ENDPOINT", endpoint)
        mp.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
        mp.setenv("HF_DATASETS_OFFLINE", "1" if offline else "0")
        mp.delenv("TRANSFORMERS_OFFLINE", raising=False)
        mp.setenv("DISABLE_SAFETENSORS_CONVERSION", "1")
        mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        no_proxy = _no_proxy_value(host)
        mp.setenv("NO_PROXY", no_proxy)
        mp.setenv("no_proxy", no_proxy)
        if token is None:
            mp.delenv("HF_TOKEN", raising=False)
        else:
            mp.setenv("HF_TOKEN", token)

        mp.setattr(hf_constants, "ENDPOINT", endpoint)
        mp.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        mp.setattr(hf_constants, "HF_URL_HOSTS", frozenset(hf_constants.HF_URL_HOSTS | {host.lower()}))
        mp.setattr(hf_constants, "HF_HUB_OFFLINE", offline)
        mp.setattr(hf_api_module.api, "endpoint", endpoint)
        hf_fs_module = sys.modules.get("huggingface_hub.hf_file_system")
        if hf_fs_module is not None and hasattr(hf_fs_module, "hffs"):
            mp.setattr(hf_fs_module.hffs, "endpoint", endpoint)

        transformers_hub = sys.modules.get("transformers.utils.hub")
        if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
            mp.setattr(transformers_hub, "_hf_api", None)

        datasets_config = sys.modules.get("datasets.config")
        if datasets_config is not None:
            mp.setattr(datasets_config, "HF_ENDPOINT", endpoint, raising=False)
            mp.setattr(datasets_config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}", raising=False)
            mp.setattr(datasets_config, "HF_HUB_OFFLINE", offline, raising=False)
            mp.setattr(datasets_config, "HF_DATASETS_OFFLINE", offline, raising=False)

        hf_http.close_session()  # a fresh httpx client picks up NO_PROXY; no stale keep-alive connections
        yield
    finally:
        transformers_hub = sys.modules.get("transformers.utils.hub")
        if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
            transformers_hub._hf_api = None  # may have been built during the scope; undo() restores an older one
        mp.undo()
        hf_http.close_session()


def fresh_process_env(endpoint: str, hf_home: str | os.PathLike, *, token: str | None = FAKE_TOKEN, **extra: str) -> dict:
    """Environment for a fresh Python process that talks to ``endpoint`` with an empty cache in ``hf_home``."""
    env = dict(os.environ)
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_DATASETS_CACHE", "HF_ASSETS_CACHE",
                "HF_XET_CACHE", "TRANSFORMERS_OFFLINE", "HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH"):  # fmt: skip
        env.pop(key, None)
    host = urlsplit(endpoint).hostname or ""
    env.update(
        HF_ENDPOINT=endpoint.rstrip("/"),
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE="0",
        HF_DATASETS_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        DISABLE_SAFETENSORS_CONVERSION="1",
        NO_PROXY=_no_proxy_value(host),
        no_proxy=_no_proxy_value(host),
        PYTHONUNBUFFERED="1",
    )
    if token is None:
        env.pop("HF_TOKEN", None)
    else:
        env["HF_TOKEN"] = token
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python_fresh(
    code: str,
    endpoint: str,
    *,
    hf_home: str | os.PathLike | None = None,
    args: list[str] | None = None,
    timeout: float = 180,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter against ``endpoint`` with an empty HF cache (a new temp ``HF_HOME``
    unless ``hf_home`` is given). The child gets the same loopback-only socket guard as the test-suite.

    With ``check=True`` a non-zero exit raises ``AssertionError`` carrying the child's stdout/stderr.
    """
    workdir = Path(tempfile.mkdtemp(prefix="hf_rec_fresh_proc_"))
    if hf_home is None:
        hf_home = workdir / "hf_home"
        Path(hf_home).mkdir()
    script = workdir / "script.py"
    script.write_text(_NETWORK_GUARD + "\n" + textwrap.dedent(code))
    proc_env = fresh_process_env(endpoint, hf_home, **(env or {}))
    proc = subprocess.run(
        [sys.executable, str(script), *(args or [])],
        env=proc_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(workdir),
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"fresh process exited with {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def unique_repo_id(prefix: str = "repo", namespace: str = FAKE_USER) -> str:
    return f"{namespace}/{prefix}-{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackHub]:
    """A running :class:`LoopbackHub` (free port, temp storage); the HF client is online and pointed at it."""
    root = tmp_path_factory.mktemp("loopback_hub")
    hub = LoopbackHub(root).start()
    try:
        with hub_client_env(hub.endpoint, offline=False):
            yield hub
    finally:
        hub.stop()


@pytest.fixture
def hub_api(hub_server: LoopbackHub):
    """An ``HfApi`` bound explicitly to the loopback Hub with the fake token."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_server.endpoint, token=FAKE_TOKEN)


@pytest.fixture
def hub_repo_id(request: pytest.FixtureRequest) -> str:
    """A fresh, not-yet-created repo id under the fake user (unique per test)."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-") or "repo"
    return unique_repo_id(name)


@pytest.fixture
def hub_offline(hub_server: LoopbackHub) -> Iterator[None]:
    """Offline mode back on for one test (still pointed at the loopback Hub)."""
    with hub_client_env(hub_server.endpoint, offline=True):
        yield
