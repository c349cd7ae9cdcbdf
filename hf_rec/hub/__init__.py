"""Hugging Face Hub helpers for hf_rec: push a run folder, load it back, render model cards, and a loopback Hub
server for tests and private demos.

Everything is imported lazily so that ``python -m hf_rec.hub.server`` runs without runpy's "found in sys.modules"
warning and without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FAKE_USER": "server",
    "HubError": "server",
    "LoopbackHub": "server",
    "push_to_hub": "push",
    "export_run_folder": "push",
    "load_recommender": "push",
    "load_item_tokenizer": "push",
    "validate_run_folder": "push",
    "run_folder_files": "push",
    "render_model_card": "cards",
    "card_from_run_folder": "cards",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .cards import card_from_run_folder, render_model_card
    from .push import (
        export_run_folder,
        load_item_tokenizer,
        load_recommender,
        push_to_hub,
        run_folder_files,
        validate_run_folder,
    )
    from .server import FAKE_USER, HubError, LoopbackHub


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
