"""Hugging Face Hub helpers for hf_rec: push a run folder (or export it as the Hub repo would hold it), load it
back, render model cards. Imported lazily, so `hf-rec --help` does not import torch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
