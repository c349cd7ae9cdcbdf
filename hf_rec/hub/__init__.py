"""Hugging Face Hub helpers for hf_rec, including a loopback Hub server for tests and private demos.

``LoopbackHub`` (and friends) are imported lazily so that ``python -m hf_rec.hub.server`` runs without runpy's
"found in sys.modules" warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FAKE_USER", "HubError", "LoopbackHub"]

if TYPE_CHECKING:  # pragma: no cover
    from .server import FAKE_USER, HubError, LoopbackHub


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
