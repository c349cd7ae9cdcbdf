"""`transformers` pipelines for hf_rec. Importing this package registers the `"next-item-recommendation"` task:

    >>> from transformers import pipeline
    >>> import hf_rec.pipelines
    >>> recommender = pipeline("next-item-recommendation", model="path/or/user/repo")
    >>> recommender({"history": ["1193", "661"]}, top_k=5)
"""

from transformers.pipelines import PIPELINE_REGISTRY

from ..models import AutoModelForSequentialRecommendation
from .next_item import TASK, NextItemRecommendationPipeline

PIPELINE_REGISTRY.register_pipeline(
    TASK,
    pipeline_class=NextItemRecommendationPipeline,
    pt_model=AutoModelForSequentialRecommendation,
    type="multimodal",  # inputs are item-id histories, none of transformers' text / image / audio types
)

__all__ = ["NextItemRecommendationPipeline", "TASK"]
