"""Serving a trained recommender: the REST service (`hf-rec serve`), needing the `serve` extra (FastAPI, uvicorn)."""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):
    """`hf_rec.serving.service.create_app` (imported on use: FastAPI is an optional dependency)."""
    from .service import create_app as _create_app

    return _create_app(*args, **kwargs)
