"""Run configuration: model hyperparameters (the family's config class) plus small dataclasses for data,
training and evaluation, filled from YAML with dotted `section.key=value` overrides. Unknown keys are errors."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write_text
from ..evaluation.metrics import METRIC_NAMES
from ..evaluation.sampled import metric_prefix
from ..models import FAMILIES


def check_value(key: str, value: Any, annotation: Any) -> Any:
    """`value` checked against a field's type (int, float, bool, str, list[int], or one of them | None) with an error
    naming `key` and the value; returns it, with floats given as strings or integers made floats (YAML reads `1e-3`
    as the string '1e-3'). Other annotations are left to the field's own checks."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) != 1:
            return value
        annotation = kinds[0]
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
    elif annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
    elif annotation is float:
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        return float(number)
    elif annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
    elif typing.get_origin(annotation) is list and typing.get_args(annotation) == (int,):
        if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ValueError(f"{key} must be a list of integers, e.g. [10, 20], got {value!r}")
        return list(value)
    return value


def check_fields(obj: Any, section: str) -> None:
    """`check_value` on every field of the dataclass `obj` (run before the fields' own range checks)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, check_value(f"{section}.{f.name}", getattr(obj, f.name), hints[f.name]))


@dataclass
class DataArgs:
    """Which data, and how to process it (see `hf_rec.data.load_sequential_dataset`).

    `cold_item_fraction` holds out that share of the items (seeded by `cold_item_seed`) from training and
    validation; the run then also reports `test_cold`: metrics on the users whose test item was never trained on.

    `timestamps` carries each interaction's unix time to models with a time bias (`model.use_time_bias`) or
    context features (`model.context_features`); data without a timestamp for every interaction is refused.
    `timestamps: partial` gives the times the files have and 0 ("unknown") elsewhere (ML-1M here: users 1-2,999),
    for context features; a time bias needs `true`.

    `item_features` / `user_features` load the dataset's categorical item / user features and give them to the
    model as inputs (`hf_rec/models/features.py`; the model's `item_features` / `user_features` fields come from the
    tokenizer). For an interaction file, `item_feature_columns` / `user_feature_columns` name its feature columns;
    `numeric_feature_buckets` (`{column: B}`) makes some of them numeric, split into `B` quantile buckets.
    `interaction_features` gives each history item's interaction features to the model (ML-1M / ML-100K: the rating
    given; a file: its `interaction_feature_columns`).
    """

    name: str = "ml-100k"
    data_dir: str | None = None
    min_rating: float | None = None
    user_k_core: int | None = None
    item_k_core: int | None = None
    max_history: int | None = None
    cold_item_fraction: float | None = None
    cold_item_seed: int = 0
    timestamps: bool | str = False
    item_features: bool = False
    user_features: bool = False
    item_feature_columns: list[str] | None = None
    user_feature_columns: list[str] | None = None
    numeric_feature_buckets: dict[str, int] | None = None
    interaction_features: bool = False
    interaction_feature_columns: list[str] | None = None

    def __post_init__(self):
        check_fields(self, "data")
        if not self.name:
            raise ValueError("data.name must name a dataset or a file")
        for key in ("item_feature_columns", "user_feature_columns", "interaction_feature_columns"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(c, str) and c for c in value)):
                raise ValueError(f"data.{key} must be a list of column names, e.g. [genre, brand], got {value!r}")
        numeric = self.numeric_feature_buckets
        if numeric is not None and not (isinstance(numeric, dict) and all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 2 for b in numeric.values()
        )):  # fmt: skip
            raise ValueError(f"data.numeric_feature_buckets must map column names to a number of buckets >= 2, e.g. "
                             f"{{price: 10}}, got {numeric!r}")  # fmt: skip
        columns = {*(self.item_feature_columns or []), *(self.user_feature_columns or []),
                   *(self.interaction_feature_columns or [])}  # fmt: skip
        stray = sorted(set(numeric or {}) - columns)
        if stray:
            raise ValueError(f"data.numeric_feature_buckets names {stray}, which are not in data.item_feature_columns / "
                             "data.user_feature_columns / data.interaction_feature_columns")
        if not isinstance(self.timestamps, bool) and self.timestamps != "partial":
            raise ValueError(
                f"data.timestamps must be true or false, or partial (times where the files have them), got {self.timestamps!r}"
            )
        if self.cold_item_fraction is not None and not 0.0 < float(self.cold_item_fraction) < 1.0:
            raise ValueError(f"data.cold_item_fraction must be in (0, 1) or null, got {self.cold_item_fraction!r}")
        if self.timestamps and self.cold_item_fraction is not None:
            # cold_start_split strips items from the histories, not their times: they would no longer line up.
            raise ValueError("data.cold_item_fraction cannot be combined with data.timestamps: true")

    def load_options(self) -> dict[str, Any]:
        options = {
            k: v
            for k, v in (
                ("min_rating", self.min_rating),
                ("user_k_core", self.user_k_core),
                ("item_k_core", self.item_k_core),
                ("max_history", self.max_history),
            )
            if v is not None
        }
        for key in ("timestamps", "item_features", "user_features", "item_feature_columns", "user_feature_columns",
                    "numeric_feature_buckets", "interaction_features", "interaction_feature_columns"):  # fmt: skip
            if getattr(self, key):  # only when on: the run fingerprint of other runs stays that of earlier versions
                options[key] = getattr(self, key)
        return options


@dataclass
class TrainArgs:
    """Optimisation settings (AdamW with linear warmup then a constant or linear-decay schedule).

    `group_by_length` batches users of similar history length together (transformers' `LengthGroupedSampler`,
    randomised within mega-batches): on ML-1M it cuts padded positions from 46% to 2% of each batch.

    `cpu_threads` sets torch's intra-op threads when training on CPU (default: torch's choice, one per core). On a
    CPU that other jobs share, fewer threads can be several times faster: OpenMP threads busy-wait for a core that is
    taken (benchmarks/results/cpu-threads.md). `max_train_minutes` ends training after the first epoch that brings
    the training time past it (a time budget; validation and test still run). `torch_compile` compiles the model
    with TorchInductor through accelerate's dynamo plugin (the first steps of each new batch shape compile).

    `init_from` (a saved model folder) starts a new run from that model's weights wherever a tensor of the same
    name and shape exists (two-stage training: e.g. an LLMRec `init` model, then `lora` fine-tuning of its backbone
    on top of the trained recommender); the others keep their fresh initialisation.
    """

    num_epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    adam_beta2: float = 0.98
    warmup_steps: int = 0
    lr_scheduler: str = "constant_with_warmup"
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None
    max_grad_norm: float | None = 1.0
    seed: int = 42
    num_workers: int = 0
    group_by_length: bool = False
    log_every: int = 50
    keep_checkpoints: int = 2
    cpu_threads: int | None = None
    max_train_minutes: float | None = None
    torch_compile: bool = False
    init_from: str | None = None

    def __post_init__(self):
        if self.mixed_precision is False:  # YAML reads an unquoted `no` (e.g. training.mixed_precision=no) as false
            self.mixed_precision = "no"
        check_fields(self, "training")
        for name in ("num_epochs", "batch_size", "gradient_accumulation_steps", "log_every", "keep_checkpoints"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"training.{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"training.learning_rate must be > 0, got {self.learning_rate!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:  # a negative norm would flip the gradient
            raise ValueError(
                f"training.max_grad_norm must be a number > 0, or null for no clipping, got {self.max_grad_norm!r}"
            )
        if not 0.0 <= self.adam_beta2 < 1.0:
            raise ValueError(f"training.adam_beta2 must be in [0, 1), got {self.adam_beta2!r}")
        for name in ("weight_decay", "warmup_steps", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"training.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"training.cpu_threads must be a positive integer or null, got {self.cpu_threads!r}")
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError(f"training.max_train_minutes must be a number > 0 or null, got {self.max_train_minutes!r}")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise ValueError(
                f"training.mixed_precision must be null (the launcher's), 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}"
            )
        if self.lr_scheduler not in ("constant_with_warmup", "linear", "cosine"):
            raise ValueError(
                f"training.lr_scheduler must be constant_with_warmup, linear or cosine, got {self.lr_scheduler!r}"
            )


@dataclass
class EvalArgs:
    """How validation and test are scored (full-catalogue ranking with seen items filtered by default)."""

    ks: list[int] = field(default_factory=lambda: [10])
    protocol: str = "full"
    num_negatives: int = 100
    sampling: str = "uniform"
    exclude_seen: bool = True
    batch_size: int = 512
    metric_for_best_model: str = "ndcg@10"
    early_stopping_patience: int | None = 10
    eval_every: int = 1

    def __post_init__(self):
        check_fields(self, "evaluation")
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ValueError(f"evaluation.ks must be a list of positive integers, got {self.ks!r}")
        if self.protocol not in ("full", "sampled"):
            raise ValueError(f"evaluation.protocol must be 'full' or 'sampled', got {self.protocol!r}")
        if self.sampling not in ("uniform", "popularity"):
            raise ValueError(f"evaluation.sampling must be 'uniform' or 'popularity', got {self.sampling!r}")
        if self.num_negatives < 1:
            raise ValueError(f"evaluation.num_negatives must be >= 1, got {self.num_negatives!r}")
        # The best epoch is chosen by a key of the evaluator's result: check it now, not after the first epoch.
        prefix = metric_prefix(self.num_negatives, self.sampling) if self.protocol == "sampled" else ""
        if self.metric_for_best_model not in {f"{prefix}{name}@{k}" for name in METRIC_NAMES for k in self.ks}:
            raise ValueError(
                f"evaluation.metric_for_best_model={self.metric_for_best_model!r} is not computed with "
                f"evaluation.ks={self.ks} and protocol {self.protocol!r}: use '{prefix}<name>@<k>' with <name> one of "
                f"{', '.join(METRIC_NAMES)} and <k> in ks, e.g. '{prefix}ndcg@{self.ks[0]}'"
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"evaluation.early_stopping_patience must be >= 1 or null, got {self.early_stopping_patience!r}")
        if self.eval_every < 1 or self.batch_size < 1:
            raise ValueError("evaluation.eval_every and evaluation.batch_size must be >= 1")


@dataclass
class RunConfig:
    """Everything a training run needs. `model` holds the family name and its config's keyword arguments."""

    model: dict[str, Any]
    data: DataArgs = field(default_factory=DataArgs)
    training: TrainArgs = field(default_factory=TrainArgs)
    evaluation: EvalArgs = field(default_factory=EvalArgs)

    def __post_init__(self):
        self.model = dict(self.model)
        family = self.model.get("family")
        if family not in FAMILIES:
            raise ValueError(f"model.family must be one of {sorted(FAMILIES)}, got {family!r}")
        allowed = config_arguments(FAMILIES[family][0])
        unknown = sorted(set(self.model) - allowed - {"family"})
        if unknown:
            raise ValueError(
                f"unknown model keys for family {family!r}: {unknown}; allowed: {sorted(allowed)}"
            )
        derived = sorted({"vocab_size", "pad_token_id", "mask_token_id", "item_features", "user_features",
                          "interaction_features"} & set(self.model))  # fmt: skip
        if derived:
            raise ValueError(f"model keys {derived} come from the dataset's ItemTokenizer; remove them from the config")
        for key, annotation in config_annotations(FAMILIES[family][0]).items():
            if key in self.model:
                self.model[key] = check_value(f"model.{key}", self.model[key], annotation)
        FAMILIES[family][0](**self.model_kwargs())  # validates values now, before any data is loaded
        if self.model.get("use_time_bias") and self.data.timestamps is not True:
            raise ValueError(
                "model.use_time_bias: true needs data.timestamps: true (the time bias reads each item's time; "
                f"data.timestamps is {self.data.timestamps!r})"
            )
        if self.model.get("context_features") and not self.data.timestamps:
            raise ValueError("model.context_features needs data.timestamps: true (context is read from each item's time)")
        if self.model.get("user_features_fusion", "add") != "add" and not (self.data.user_features or self.data.user_feature_columns):
            raise ValueError(f"model.user_features_fusion: {self.model['user_features_fusion']} needs data.user_features: true "
                             "(or data.user_feature_columns)")
        if self.model.get("item_features_in_scores") and not self.data.item_features:
            raise ValueError("model.item_features_in_scores: true needs data.item_features: true")

    @property
    def family(self) -> str:
        return self.model["family"]

    def model_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.model.items() if k != "family"}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self.data)
        for key in ("timestamps", "item_features", "user_features", "item_feature_columns", "user_feature_columns",
                    "numeric_feature_buckets", "interaction_features", "interaction_feature_columns"):  # fmt: skip
            if not data[key]:  # left out when off: records of earlier runs (studies' run records) still match
                del data[key]
        return {
            "model": dict(self.model),
            "data": data,
            "training": dataclasses.asdict(self.training),
            "evaluation": dataclasses.asdict(self.evaluation),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved config as YAML, atomically."""
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RunConfig:
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: the top level must be a mapping with sections model/data/training/evaluation")
        unknown = sorted(set(raw) - {"model", "data", "training", "evaluation"})
        if unknown:
            raise ValueError(f"{source}: unknown sections {unknown}; allowed: model, data, training, evaluation")
        if "model" not in raw or not isinstance(raw["model"], dict):
            raise ValueError(f"{source}: a 'model' section with at least 'family' is required")
        sections = {}
        for name, klass in (("data", DataArgs), ("training", TrainArgs), ("evaluation", EvalArgs)):
            values = raw.get(name) or {}
            if not isinstance(values, dict):
                raise ValueError(f"{source}: section {name!r} must be a mapping, got {values!r}")
            names = {f.name for f in dataclasses.fields(klass)}
            bad = sorted(set(values) - names)
            if bad:
                raise ValueError(f"{source}: unknown keys in {name!r}: {bad}; allowed: {sorted(names)}")
            try:
                sections[name] = klass(**values)
            except TypeError as err:
                raise ValueError(f"{source}: bad value in section {name!r}: {err}") from None
            except ValueError as err:  # the message names section.key and the value; add the file
                raise ValueError(f"{source}: {err}") from None
        try:
            return cls(model=raw["model"], **sections)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None


def config_arguments(config_class) -> set[str]:
    """Keyword arguments accepted by a config class and its hf_rec parents."""
    names: set[str] = set()
    for klass in config_class.__mro__:
        if klass.__module__.startswith("transformers"):
            break
        if "__init__" in klass.__dict__:
            params = inspect.signature(klass.__dict__["__init__"]).parameters
            names |= {
                n for n, p in params.items() if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            }
    names |= {"attn_implementation"}
    return names


def config_annotations(config_class) -> dict[str, Any]:
    """Annotated keyword arguments of a config class and its hf_rec parents (the nearest class wins)."""
    hints: dict[str, Any] = {}
    for klass in reversed(config_class.__mro__):
        if "__init__" in klass.__dict__ and not klass.__module__.startswith(("transformers", "builtins")):
            try:
                hints.update(typing.get_type_hints(klass.__dict__["__init__"]))
            except (NameError, TypeError):  # an annotation that cannot be evaluated: left to the class's own checks
                pass
    hints.pop("return", None)
    return hints


def parse_override(text: str) -> tuple[list[str], Any]:
    """`training.num_epochs=3` -> (["training", "num_epochs"], 3); the value is read as YAML."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, value = text.split("=", 1)
    path = [p for p in key.strip().lstrip("-").split(".") if p]
    if len(path) != 2:
        raise ValueError(f"override {text!r}: the key must be section.key (e.g. training.num_epochs)")
    return path, yaml.safe_load(value) if value.strip() else None


def load_run_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML run config and apply dotted overrides."""
    raw: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        source = str(path)
        if not Path(path).is_file():
            raise ValueError(f"config file not found: {path}")
        with open(path, encoding="utf-8") as f:
            try:
                raw = yaml.safe_load(f) or {}
            except yaml.YAMLError as err:
                raise ValueError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(raw, dict):  # checked here too: the overrides below index into it
            raise ValueError(f"{path}: the top level must be a mapping with sections model/data/training/evaluation, "
                             f"got {type(raw).__name__} {raw!r:.60}")  # fmt: skip
    for text in overrides:
        (section, key), value = parse_override(text)
        if raw.get(section) is None:
            raw[section] = {}
        if not isinstance(raw[section], dict):
            raise ValueError(f"{source}: section {section!r} must be a mapping, got {raw[section]!r}")
        raw[section][key] = value
    return RunConfig.from_dict(raw, source=source)
