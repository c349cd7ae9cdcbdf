"""hf_rec model families. Importing this package registers them with the transformers Auto classes."""

from .auto import AutoModelForSequentialRecommendation, register_family
from .configuration_common import SequentialRecommenderConfig, TransformerRecommenderConfig
from .configuration_sasrec import SASRecConfig
from .modeling_common import SequentialRecommenderOutput
from .modeling_sasrec import SASRecForSequentialRecommendation, SASRecModel, SASRecPreTrainedModel

register_family(SASRecConfig, SASRecModel, SASRecForSequentialRecommendation)

__all__ = [
    "AutoModelForSequentialRecommendation",
    "SequentialRecommenderConfig",
    "TransformerRecommenderConfig",
    "SequentialRecommenderOutput",
    "SASRecConfig",
    "SASRecModel",
    "SASRecPreTrainedModel",
    "SASRecForSequentialRecommendation",
]
