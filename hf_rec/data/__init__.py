"""Data: real sequential-recommendation datasets -> leave-one-out splits + ``ItemTokenizer``."""

from .download import DATASET_ARCHIVES, datasets_cache_dir, download_and_verify, extract_zip
from .loading import BUILTIN_DATASETS, load_dataset_like, load_sequential_dataset
from .splits import SPLIT_FEATURES, dataset_fingerprint, leave_one_out_splits
from .stats import dataset_statistics
from .tokenizer import TOKENIZER_FILE_NAME, ItemTokenizer
from .collators import OBJECTIVES, SequentialCollator, left_pad

__all__ = [
    "BUILTIN_DATASETS",
    "OBJECTIVES",
    "SequentialCollator",
    "left_pad",
    "DATASET_ARCHIVES",
    "ItemTokenizer",
    "SPLIT_FEATURES",
    "TOKENIZER_FILE_NAME",
    "dataset_fingerprint",
    "dataset_statistics",
    "datasets_cache_dir",
    "download_and_verify",
    "extract_zip",
    "leave_one_out_splits",
    "load_dataset_like",
    "load_sequential_dataset",
]
