"""Model cards rendered from a training run with `huggingface_hub.ModelCard`: metrics as model-index
`EvalResult`s whose names carry the protocol, the dataset fingerprint, the configuration, hardware and time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = Path(__file__).with_name("templates") / "model_card.md"

FAMILY_INFO = {
    "sasrec": ("SASRec", "Wang-Cheng Kang and Julian McAuley. Self-Attentive Sequential Recommendation. ICDM 2018. arXiv:1808.09781"),
    "bert4rec": ("BERT4Rec", "Fei Sun et al. BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from Transformer. CIKM 2019. arXiv:1904.06690"),
    "gru4rec": ("GRU4Rec", "Balázs Hidasi et al. Session-based Recommendations with Recurrent Neural Networks. ICLR 2016. arXiv:1511.06939"),
    "narm": ("NARM", "Jing Li et al. Neural Attentive Session-based Recommendation. CIKM 2017. arXiv:1711.04725"),
    "hstu": ("HSTU", "Jiaqi Zhai et al. Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers for Generative Recommendations. ICML 2024. arXiv:2402.17152"),
    "llmrec": ("LLMRec (LLM-initialised, text-aware)", "Yupeng Hou et al. Towards Universal Sequence Representation Learning for Recommender Systems (UniSRec). KDD 2022; Edward J. Hu et al. LoRA. ICLR 2022"),
}

DATASET_LICENSES = {
    "ml-1m": "MovieLens terms (GroupLens): research use, cite Harper & Konstan 2015, no redistribution of the data",
    "ml-100k": "MovieLens terms (GroupLens): research use, cite Harper & Konstan 2015, no redistribution of the data",
    "amazon-scientific": "Amazon review data 2018 (McAuley lab, UCSD): research use, cite Ni et al. 2019",
    "amazon-beauty": "Amazon review data 2014 (McAuley lab, UCSD): research use, cite He & McAuley 2016",
}


def metric_label(name: str, protocol: dict[str, Any]) -> str:
    """`ndcg@10` -> `NDCG@10 (full ranking, seen filtered, leave-one-out)`; sampled names say so."""
    ranking = "full ranking" if protocol.get("ranking", "").startswith("full") else protocol.get("ranking", "")
    seen = "seen filtered" if str(protocol.get("seen_items", "")).startswith("filtered") else "seen not filtered"
    base, _, k = name.partition("@")
    pretty = base.replace("sampled", "sampled-").upper() if base.startswith("sampled") else base.upper()
    return f"{pretty}@{k} ({ranking}, {seen}, leave-one-out)" if k else f"{pretty} ({ranking}, {seen})"


def side_information(model_config: dict[str, Any] | None) -> str:
    """One line naming the side information a model reads (its config's feature fields), empty for none."""
    config = model_config or {}
    parts = []
    if config.get("item_features"):
        scored = ", also in the scored item vectors" if config.get("item_features_in_scores") else ""
        parts.append("item features " + ", ".join(f"{n} ({s['vocab_size'] - 1} values)" for n, s in
                                                  sorted(config["item_features"].items())) + scored)  # fmt: skip
    if config.get("user_features"):
        token = " (as a user token before the history)" if config.get("user_features_fusion") == "prefix" else ""
        parts.append("user features " + ", ".join(f"{n} ({s['vocab_size'] - 1} values)" for n, s in
                                                  sorted(config["user_features"].items())) + token)  # fmt: skip
    if config.get("context_features"):
        parts.append("context " + ", ".join(config["context_features"]) + " from each interaction's time (0 = unknown)")
    if config.get("interaction_features"):
        parts.append("interaction features " + ", ".join(f"{n} ({s['vocab_size'] - 1} values)" for n, s in
                                                        sorted(config["interaction_features"].items()))
                     + " of each history item")  # fmt: skip
    return "; ".join(parts)


def render_model_card(
    results: dict[str, Any],
    run_config: dict[str, Any],
    repo_id: str = "path/to/this/folder",
    model_config: dict[str, Any] | None = None,
) -> str:
    """Markdown model card (YAML metadata + body) for a finished run.

    Args:
        results (`dict`): The run's `metrics.json`.
        run_config (`dict`): The resolved run configuration (`training_config.yaml`).
        repo_id (`str`): Used in the usage snippets (`from_pretrained("<repo_id>")`).
        model_config (`dict`, *optional*): The saved `config.json` (full model hyperparameters).
    """
    family = results.get("model_family", run_config.get("model", {}).get("family", "sasrec"))
    family_title, citation = FAMILY_INFO.get(family, (family, ""))
    dataset = results["dataset"]
    protocol = results["protocol"]
    test = {k: v for k, v in results["test"].items() if "@" in k}
    eval_results = [
        EvalResult(
            task_type="sequential-recommendation",
            task_name="Next-item recommendation",
            dataset_type=dataset["name"],
            dataset_name=dataset["name"],
            dataset_split="test",
            dataset_revision=dataset.get("fingerprint"),
            metric_type=name,
            metric_name=metric_label(name, protocol),
            metric_value=round(float(value), 6),
            metric_config=protocol.get("ranking"),
        )
        for name, value in sorted(test.items())
    ]
    card_data = ModelCardData(
        model_name=f"{family_title} on {dataset['name']}",
        library_name="hf_rec",
        license="apache-2.0",
        tags=["sequential-recommendation", "recommendation", family, "hf_rec"],
        pipeline_tag="other",
        datasets=[dataset["name"]],
        eval_results=eval_results,
        metrics=sorted({name.split("@")[0] for name in test}),
        # hf_rec's own keys (the Hub keeps unknown metadata): what a reader needs to compare runs.
        hf_rec={
            "family": family,
            "dataset_fingerprint": dataset.get("fingerprint"),
            "evaluation_protocol": {k: v for k, v in protocol.items() if k != "ks"},
            "test_metrics": {name: round(float(value), 6) for name, value in sorted(test.items())},
        },
    )
    best_name, best_value = next(iter(results.get("best_validation", {"ndcg@10": float("nan")}).items()))
    training = results.get("training", {})
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=f"{family_title} on {dataset['name']}",
        family=family,
        family_title=family_title,
        dataset_name=dataset["name"],
        dataset_options=json.dumps(dataset.get("options", {})),
        fingerprint=dataset.get("fingerprint"),
        statistics=json.dumps(dataset.get("statistics", {})),
        dataset_license=DATASET_LICENSES.get(dataset["name"]),
        protocol=protocol,
        test_metrics=sorted(test.items()),
        num_users=results["test"].get("num_users"),
        best_metric_name=best_name,
        best_metric_value=best_value if best_value is not None else float("nan"),
        best_epoch=results.get("best_epoch"),
        has_plot=True,
        side_information=side_information(model_config),
        features_in_scores=bool((model_config or {}).get("item_features_in_scores")
                                and (model_config or {}).get("item_features")),
        max_history=(model_config or {}).get("max_position_embeddings")
        or run_config.get("model", {}).get("max_position_embeddings"),
        model_config=yaml.safe_dump(run_config.get("model", {}), default_flow_style=True, width=10_000).strip(),
        training_config=yaml.safe_dump(run_config.get("training", {}), default_flow_style=True, width=10_000).strip(),
        num_parameters=f"{results.get('num_parameters', 0):,}",
        device=training.get("device", "unknown"),
        train_seconds=training.get("train_seconds", 0.0),
        wall_seconds=training.get("wall_seconds"),
        num_processes=training.get("num_processes", 1),
        epochs_run=training.get("epochs_run"),
        resumed_at_epochs=", ".join(map(str, training.get("resumed_at_epochs") or [])),
        repo_id=repo_id,
        citation=citation,
    )
    return str(card)


def minimal_model_card(config: dict[str, Any], repo_id: str) -> str:
    """Card for a model pushed without a training run (no metrics): metadata, usage, citation."""
    family = config.get("model_type", "unknown")
    family_title, citation = FAMILY_INFO.get(family, (family, ""))
    card_data = ModelCardData(
        library_name="hf_rec",
        license="apache-2.0",
        tags=["sequential-recommendation", "recommendation", family, "hf_rec"],
        pipeline_tag="other",
    )
    body = (
        f"# {family_title} recommender\n\nA **{family_title}** sequential recommender saved with hf_rec "
        "(no training run attached, so no evaluation results).\n\n"
        f"```python\nfrom hf_rec.hub import load_recommender\nmodel, tokenizer = load_recommender({repo_id!r})\n```\n\n"
        f"## Citation\n\n{citation}\n"
    )
    return f"---\n{card_data.to_yaml()}\n---\n\n{body}"


def card_from_run_folder(folder: str | Path, repo_id: str | None = None) -> str:
    """Re-render the card of a run folder (`metrics.json` + `training_config.yaml`)."""
    folder = Path(folder)
    results = json.loads((folder / "metrics.json").read_text())
    run_config = yaml.safe_load((folder / "training_config.yaml").read_text())
    config_path = folder / "config.json"
    model_config = json.loads(config_path.read_text()) if config_path.is_file() else None
    return render_model_card(results, run_config, repo_id=repo_id or str(folder), model_config=model_config)
