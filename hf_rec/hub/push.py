"""Share a recommender on the Hugging Face Hub (or any Hub behind `HF_ENDPOINT`) and load it back.

`push_to_hub(run_folder, "user/repo")` uploads what a user needs to run the model (weights, config with `auto_map`,
modeling files, `item_tokenizer.json`, LoRA adapter files, the model card re-rendered for `user/repo`, metrics, training
curves and the resolved training config) in one commit, never the training state (`checkpoints/`, `best_model/`,
`tensorboard/`). `load_recommender("user/repo")` returns `(model, ItemTokenizer)` read from one and the same commit.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import filter_repo_objects

from ..data.tokenizer import TOKENIZER_FILE_NAME, ItemTokenizer

logger = logging.getLogger("hf_rec.hub")

__all__ = [
    "ALLOW_PATTERNS",
    "IGNORE_PATTERNS",
    "check_repo_id",
    "load_item_tokenizer",
    "load_recommender",
    "push_to_hub",
    "run_folder_files",
    "validate_run_folder",
]

# `fnmatch` semantics (as in `upload_folder`): `*` also matches `/`, so `*.json` covers nested files.
ALLOW_PATTERNS = [
    "*.safetensors",  # weights (also sharded, and `adapter_model.safetensors`)
    "*.json",  # config.json, item_tokenizer.json, metrics.json, shard index, adapter_config.json, LLM tokenizer files
    "*.py",  # configuration_*.py / modeling_*.py for trust_remote_code
    "*.md",
    "*.png",
    "*.yaml",
    "*.yml",
    "*.txt",  # vocab.txt / merges.txt of an LLM text tokenizer
    "*.model",  # sentencepiece tokenizer of an LLM text model
    "adapter_*",  # LoRA adapter files, or an adapter_* subfolder
    "adapter/*",
]
# Training state and local clutter never leave the machine; pickles neither (STYLE.md: safetensors + JSON/YAML only).
IGNORE_PATTERNS = [
    "checkpoints/*",
    "best_model/*",
    "tensorboard/*",
    "*__pycache__*",
    "*.pyc",
    ".*",
    "*/.*",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.pkl",
    "*.tmp",
]
CARD_FILE = "README.md"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


# ---------------------------------------------------------------------------------------------- validation
def validate_run_folder(folder: str | os.PathLike) -> Path:
    """Check that `folder` holds a loadable recommender; raise ValueError naming the first missing or bad file.

    Needed: `config.json` (with `model_type`), weights (`model.safetensors`, a sharded index or a LoRA
    `adapter_model.safetensors`), `item_tokenizer.json`, and every `<module>.py` named in `config.json`'s `auto_map`
    (what `trust_remote_code=True` downloads).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"run folder {str(folder)!r} does not exist or is not a directory")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"run folder {str(folder)!r} has no config.json (not a saved model; did training finish?)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path} is not valid JSON: {err}") from None
    if "model_type" not in config:
        raise ValueError(f"{config_path} has no 'model_type'")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ValueError(f"run folder {str(folder)!r} has no model.safetensors (nor a sharded index or LoRA adapter)")
    if not (folder / TOKENIZER_FILE_NAME).is_file():
        raise ValueError(
            f"run folder {str(folder)!r} has no {TOKENIZER_FILE_NAME}: without it raw item ids cannot be mapped"
        )
    for reference in (config.get("auto_map") or {}).values():
        reference = reference[0] if isinstance(reference, (list, tuple)) else reference
        if not reference:
            continue
        module = reference.split("--")[-1].rsplit(".", 1)[0]  # "repo--module.Class" or "module.Class"
        if not (folder / f"{module}.py").is_file():
            raise ValueError(
                f"run folder {str(folder)!r} has no {module}.py, which config.json's auto_map names "
                f"({reference!r}): trust_remote_code loading would fail"
            )
    return folder


def check_repo_id(repo_id: str) -> None:
    """ValueError unless `repo_id` is `namespace/name` with Hub-valid parts. The Hub files a bare name under the
    token's user when creating the repo but not when committing to it, so a bare name would leave an empty repo."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    try:
        if len(parts) != 2 or not all(parts):
            raise HFValidationError("expected two parts")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ValueError(
            f"repo id {repo_id!r} must look like 'namespace/name' (your user or organisation name, a slash, the "
            "model name; letters, digits, '-', '_', '.')"
        ) from None


def run_folder_files(folder: str | os.PathLike) -> list[str]:
    """Relative paths (with `/`) of the files `push_to_hub` uploads from `folder`, sorted."""
    folder = Path(folder)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS))


def _render_card(folder: Path, repo_id: str) -> bytes:
    """The run's model card with `repo_id` in its usage snippets; the folder's own README (or a minimal card) when
    the run has no metrics to render."""
    from .cards import card_from_run_folder, minimal_model_card

    if (folder / "metrics.json").is_file() and (folder / "training_config.yaml").is_file():
        return card_from_run_folder(folder, repo_id).encode()
    if (folder / CARD_FILE).is_file():
        logger.warning("%s has no metrics.json/training_config.yaml: pushing its README.md unchanged", folder)
        return (folder / CARD_FILE).read_bytes()
    config = json.loads((folder / "config.json").read_text())
    return minimal_model_card(config, repo_id).encode()


def _public_copy(folder: Path, name: str) -> bytes | str:
    """What to upload for `name`: local filesystem paths (the data folder a run read) are not published.

    `item_tokenizer.json` keeps only the data folder's name in `metadata.source`; `training_config.yaml` drops
    `data.data_dir` (the dataset is identified by name, options and fingerprint instead) and keeps only the folder
    name of `training.init_from`.
    """
    path = folder / name
    if name == "item_tokenizer.json":
        data = json.loads(path.read_text())
        source = data.get("metadata", {}).get("source")
        if isinstance(source, str) and os.sep in source:
            data["metadata"]["source"] = Path(source).name
            return json.dumps(data, ensure_ascii=False, indent=1).encode()
    elif name == "training_config.yaml":
        import yaml

        config = yaml.safe_load(path.read_text())
        if not isinstance(config, dict):
            return str(path)
        data, training = config.get("data") or {}, config.get("training") or {}
        changed = False
        if data.get("data_dir"):
            data["data_dir"], changed = None, True
        if training.get("init_from"):
            training["init_from"], changed = Path(training["init_from"]).name, True
        if changed:
            return yaml.safe_dump(config, sort_keys=False).encode()
    return str(path)


def export_run_folder(run_folder: str | os.PathLike, destination: str | os.PathLike, repo_id: str | None = None,
                      item_texts: bool = True) -> Path:
    """Write the files `push_to_hub` would upload from `run_folder` (weights, config, modeling files, item
    tokenizer, metrics, curves, training config without local paths, the card rendered for `repo_id`) into the new
    folder `destination`: a model folder as the Hub repo would hold it. `item_texts=False` leaves the item texts
    out of `item_tokenizer.json` (MovieLens titles may not be redistributed; ids are enough to load and score).
    A `destination` that exists is refused."""
    folder = validate_run_folder(run_folder)
    destination = Path(destination)
    if destination.exists():
        raise ValueError(f"{destination} already exists: export into a new folder")
    from ..atomic import atomic_directory

    with atomic_directory(destination) as tmp:
        for name in run_folder_files(folder):
            if name == CARD_FILE:
                continue
            content = _public_copy(folder, name)
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                shutil.copyfile(content, target)
            if name == "item_tokenizer.json" and not item_texts:
                data = json.loads(target.read_text())
                data["item_texts"] = None
                target.write_text(json.dumps(data, ensure_ascii=False, indent=1))
        (tmp / CARD_FILE).write_bytes(_render_card(folder, repo_id or f"model_cards/{destination.name}"))
    return destination


# ---------------------------------------------------------------------------------------------- push
SPACE_REQUIREMENTS = "torch>=2.6,<3\ntransformers>=5.17,<6\nhuggingface_hub>=1.0\ngradio>=5,<7\n"


def space_app_files(repo_id: str) -> dict[str, bytes]:
    """`app.py` (a Gradio demo that loads `repo_id` with `trust_remote_code`, no hf_rec needed) and its
    `requirements.txt`."""
    template = (Path(__file__).parent / "templates" / "space_app.py").read_text(encoding="utf-8")
    return {"app.py": template.replace("{repo_id}", repo_id).encode(), "requirements.txt": SPACE_REQUIREMENTS.encode()}


def push_to_hub(
    run_folder_or_model: Any,
    repo_id: str,
    *,
    revision: str | None = None,
    branch: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    token: str | bool | None = None,
    create_pr: bool = False,
    tokenizer: ItemTokenizer | None = None,
    endpoint: str | None = None,
    with_app: bool = False,
):
    """Upload a run folder (or a model + its ItemTokenizer) to `repo_id` in one commit.

    Args:
        run_folder_or_model (`str`, `os.PathLike` or `PreTrainedModel`): A run folder written by
            `hf_rec.training.train`, any folder with `save_pretrained` output + `item_tokenizer.json`, or a model
            (then `tokenizer` is required).
        repo_id (`str`): `"user/name"`; created (`exist_ok=True`) if missing.
        revision / branch (`str`, *optional*): Branch to commit to (created from `main` if missing); default `main`.
        private (`bool`, defaults to `False`): Visibility when the repo is created.
        commit_message (`str`, *optional*): Default `"Upload <family> recommender"`.
        token (`str`, *optional*): Hub token; default: the logged-in token / `HF_TOKEN`.
        create_pr (`bool`, defaults to `False`): Open a pull request instead of committing to the branch.
        tokenizer (`ItemTokenizer`, *optional*): Only when a model object is pushed.
        endpoint (`str`, *optional*): Hub URL; default `HF_ENDPOINT` or huggingface.co.
        with_app (`bool`, defaults to `False`): Also upload `app.py` + `requirements.txt`: a Gradio demo that runs
            without hf_rec (the model's own code via `trust_remote_code`), as a Space or with `python app.py`.

    Returns:
        `huggingface_hub.CommitInfo` (`.oid` = commit sha, `.commit_url`, `.repo_url`, `.pr_url`).

    Raises:
        ValueError: the folder lacks a needed file (named in the message), or `revision` and `branch` disagree.
    """
    check_repo_id(repo_id)  # before anything is created on the Hub
    if revision is not None and branch is not None and revision != branch:
        raise ValueError(f"revision={revision!r} and branch={branch!r} disagree: pass only one")
    branch = revision or branch
    if not isinstance(run_folder_or_model, (str, os.PathLike)):
        model = run_folder_or_model
        if not hasattr(model, "save_pretrained"):
            raise TypeError(f"push_to_hub takes a run folder or a model, got {type(model).__name__}")
        if tokenizer is None:
            raise ValueError("pushing a model object needs tokenizer=<its ItemTokenizer> (item_tokenizer.json)")
        check_tokenizer_matches(model, tokenizer, "push_to_hub")
        with tempfile.TemporaryDirectory(prefix="hf_rec_push_") as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            return push_to_hub(
                tmp, repo_id, revision=branch, private=private, commit_message=commit_message, token=token,
                create_pr=create_pr, endpoint=endpoint, with_app=with_app,
            )  # fmt: skip
    if tokenizer is not None:
        raise ValueError("tokenizer= is only for model objects: a run folder carries its own item_tokenizer.json")

    folder = validate_run_folder(run_folder_or_model)
    files = [f for f in run_folder_files(folder) if f != CARD_FILE]
    family = json.loads((folder / "config.json").read_text())["model_type"]
    operations = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=_public_copy(folder, f)) for f in files]
    operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=_render_card(folder, repo_id)))
    if with_app:
        operations += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=content)
                       for name, content in space_app_files(repo_id).items()]  # fmt: skip

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if branch is not None and branch != "main" and not create_pr:
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    # One commit (what `upload_folder` does after filtering), so the card re-rendered for `repo_id` lands atomically
    # with the weights it describes.
    commit = api.create_commit(
        repo_id,
        operations=operations,
        commit_message=commit_message or f"Upload {family} recommender with hf_rec",
        revision=branch,
        create_pr=create_pr,
    )
    logger.info("pushed %d files to %s (%s)", len(operations), commit.commit_url, commit.oid)
    return commit


# ---------------------------------------------------------------------------------------------- load
def _is_local(repo_or_path: str | os.PathLike) -> bool:
    return Path(repo_or_path).is_dir()


def _not_local_note(err: Exception, repo_or_path: str) -> Exception:
    err.add_note(f"hf_rec: {repo_or_path!r} is not a local folder, so it was looked up as a Hub repo id")
    return err


def load_item_tokenizer(
    repo_or_path: str | os.PathLike, revision: str | None = None, token: str | bool | None = None
) -> ItemTokenizer:
    """`item_tokenizer.json` from a local folder or a Hub repo (at `revision`: branch, tag or commit sha)."""
    tokenizer, _ = _download_tokenizer(repo_or_path, revision, token)
    return tokenizer


def _download_tokenizer(repo_or_path, revision, token) -> tuple[ItemTokenizer, str | None]:
    """The tokenizer plus the commit sha it came from (`None` for a local folder)."""
    if _is_local(repo_or_path):
        if revision is not None:  # a folder has one version: using it anyway would not be what was asked for
            raise ValueError(
                f"revision {revision!r} was given, but {str(repo_or_path)!r} is a local folder, which has no "
                "revisions: drop the revision, or name a Hub repo id that is not also a local folder"
            )
        return ItemTokenizer.from_pretrained(repo_or_path), None
    repo_id = str(repo_or_path)
    try:
        path = hf_hub_download(repo_id, TOKENIZER_FILE_NAME, revision=revision, token=token)
    except EntryNotFoundError as err:
        err.add_note(
            f"hf_rec: {repo_id!r} (revision {revision or 'main'!r}) has no {TOKENIZER_FILE_NAME}; "
            "push recommenders with hf_rec.hub.push_to_hub / `hf-rec push`, which uploads it"
        )
        raise
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise _not_local_note(err, repo_id)
    commit = Path(path).parent.name  # .../snapshots/<commit sha>/item_tokenizer.json
    return ItemTokenizer.from_pretrained(path), commit if _HEX40.match(commit) else revision


def load_recommender(
    repo_or_path: str | os.PathLike,
    revision: str | None = None,
    trust_remote_code: bool = False,
    token: str | bool | None = None,
    **model_kwargs: Any,
):
    """Load `(model, ItemTokenizer)` from a run folder or a Hub repo, both from the same commit.

    Args:
        repo_or_path (`str` or `os.PathLike`): Local folder, or Hub repo id (`"user/name"`).
        revision (`str`, *optional*): Branch, tag or commit sha (Hub only: a ValueError for a local folder); default
            `main`.
        trust_remote_code (`bool`, defaults to `False`): Load through `transformers.AutoModel`, which may run the
            modeling code stored in the repo (hf_rec families still load with hf_rec's classes when hf_rec is
            installed). Without it no code from the folder or repo runs, and a model that is no hf_rec family is
            refused with a ValueError.
        token (`str`, *optional*): Hub token.
        model_kwargs: Passed to `from_pretrained` (e.g. `dtype`, `device_map`).

    Raises:
        RepositoryNotFoundError / RevisionNotFoundError / EntryNotFoundError (missing `item_tokenizer.json`) for a
        Hub repo; FileNotFoundError for a folder without `item_tokenizer.json`.
    """
    # The tokenizer first: it resolves `revision` to one commit sha and gives clear Hub errors; the weights are then
    # read at that same sha, so a push landing between the two downloads cannot mix versions.
    tokenizer, commit = _download_tokenizer(repo_or_path, revision, token)
    hub_kwargs = {} if commit is None else {"revision": commit, "token": token}
    if trust_remote_code:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(str(repo_or_path), trust_remote_code=True, **hub_kwargs, **model_kwargs)
    else:
        from ..models import AutoModelForSequentialRecommendation

        model = AutoModelForSequentialRecommendation.from_pretrained(
            str(repo_or_path), trust_remote_code=False, **hub_kwargs, **model_kwargs
        )
    check_tokenizer_matches(model, tokenizer, str(repo_or_path))
    return model.eval(), tokenizer


def check_tokenizer_matches(model, tokenizer: ItemTokenizer, source: str = "the model") -> None:
    """ValueError when the tokenizer's item table does not fit the model's (a tokenizer from another run)."""
    vocab_size = getattr(model.config, "vocab_size", None)
    mask = getattr(model.config, "mask_token_id", None)
    if vocab_size is not None and vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{source}: item_tokenizer.json has vocab_size {tokenizer.vocab_size} but the model's item table has "
            f"{vocab_size}: the tokenizer comes from another run or revision"
        )
    if mask is not None and mask != tokenizer.mask_token_id:
        raise ValueError(f"{source}: tokenizer mask_token_id {tokenizer.mask_token_id} != model mask_token_id {mask}")
    for kind in ("user", "interaction"):
        wanted = getattr(model.config, f"{kind}_features", None)
        found = tokenizer.feature_config().get(f"{kind}_features")
        if wanted and found != wanted:
            raise ValueError(f"{source}: the model reads {kind} features {wanted} but item_tokenizer.json has {found}: "
                             "raw values could not be encoded for it")  # fmt: skip
