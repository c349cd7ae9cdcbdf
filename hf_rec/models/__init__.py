"""hf_rec model families. Importing this package registers them with the transformers Auto classes."""

from .auto import FAMILIES, AutoModelForSequentialRecommendation, register_family
from .configuration_bert4rec import BERT4RecConfig
from .configuration_common import SequentialRecommenderConfig, TransformerRecommenderConfig
from .configuration_gru4rec import GRU4RecConfig
from .configuration_hstu import HSTUConfig
from .configuration_llmrec import LLMRecConfig
from .configuration_narm import NARMConfig
from .configuration_sasrec import SASRecConfig
from .modeling_bert4rec import BERT4RecForSequentialRecommendation, BERT4RecModel, BERT4RecPreTrainedModel
from .modeling_common import SequentialRecommenderOutput
from .modeling_gru4rec import GRU4RecForSequentialRecommendation, GRU4RecModel, GRU4RecPreTrainedModel
from .modeling_hstu import HSTUForSequentialRecommendation, HSTUModel, HSTUPreTrainedModel
from .modeling_llmrec import LLMRecForSequentialRecommendation, LLMRecModel, LLMRecPreTrainedModel
from .modeling_narm import NARMForSequentialRecommendation, NARMModel, NARMPreTrainedModel
from .modeling_sasrec import SASRecForSequentialRecommendation, SASRecModel, SASRecPreTrainedModel

register_family(SASRecConfig, SASRecModel, SASRecForSequentialRecommendation)
register_family(BERT4RecConfig, BERT4RecModel, BERT4RecForSequentialRecommendation)
register_family(GRU4RecConfig, GRU4RecModel, GRU4RecForSequentialRecommendation)
register_family(NARMConfig, NARMModel, NARMForSequentialRecommendation)
register_family(LLMRecConfig, LLMRecModel, LLMRecForSequentialRecommendation)
register_family(HSTUConfig, HSTUModel, HSTUForSequentialRecommendation)

__all__ = [
    "FAMILIES",
    "AutoModelForSequentialRecommendation",
    "SequentialRecommenderConfig",
    "TransformerRecommenderConfig",
    "SequentialRecommenderOutput",
    "SASRecConfig",
    "SASRecModel",
    "SASRecPreTrainedModel",
    "SASRecForSequentialRecommendation",
    "BERT4RecConfig",
    "BERT4RecModel",
    "BERT4RecPreTrainedModel",
    "BERT4RecForSequentialRecommendation",
    "GRU4RecConfig",
    "GRU4RecModel",
    "GRU4RecPreTrainedModel",
    "GRU4RecForSequentialRecommendation",
    "NARMConfig",
    "NARMModel",
    "NARMPreTrainedModel",
    "NARMForSequentialRecommendation",
    "LLMRecConfig",
    "LLMRecModel",
    "LLMRecPreTrainedModel",
    "LLMRecForSequentialRecommendation",
    "HSTUConfig",
    "HSTUModel",
    "HSTUPreTrainedModel",
    "HSTUForSequentialRecommendation",
]
