"""hf_rec: sequential recommenders as first-class Hugging Face models."""

__version__ = "0.1.0"

from .models import *  # noqa: F401,F403  (registers every family with the Auto classes)
from .models import __all__ as _models_all

__all__ = ["__version__", *_models_all]
