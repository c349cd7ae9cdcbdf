"""`hf-rec`: train, evaluate, recommend, push and document sequential recommenders from the command line.

    hf-rec train --config configs/sasrec-ml100k.yaml --data-dir ../shared/data/ml-100k
    hf-rec evaluate --model runs/sasrec-ml100k --data ml-100k --data-dir ../shared/data/ml-100k --ks 10 20
    hf-rec recommend --model user/sasrec-ml100k --history 50,172,133 --k 5
    hf-rec push runs/sasrec-ml100k user/sasrec-ml100k
    hf-rec card runs/sasrec-ml100k --repo-id user/sasrec-ml100k --output README.md
    hf-rec study configs/studies/loss.yaml --data-dir ../shared/data/ml-100k --seeds 0,1,2
    hf-rec serve runs/sasrec-ml100k --port 8000
    hf-rec export runs/sasrec-ml100k exported/sasrec-ml100k
    hf-rec index runs/sasrec-ml100k items.faiss --kind hnsw
    hf-rec batch-score runs/sasrec-ml100k --data ml-100k --data-dir ../shared/data/ml-100k --output recs.parquet

Heavy imports (torch, transformers) happen inside the commands, so `hf-rec --help` is fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["build_parser", "main"]

MODEL_HELP = "local model folder (run folder) or Hub repo id (user/name); the Hub is $HF_ENDPOINT or huggingface.co"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-rec",
        description="Sequential recommenders as Hugging Face models: train, evaluate, recommend, share.",
        epilog="Run `hf-rec <command> --help` for the options of one command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    # `train` is dispatched to hf_rec.training.main before parsing (see main()); this entry documents it.
    commands.add_parser(
        "train",
        help="train and evaluate a model from a YAML config (same arguments as train.py)",
        description="Same arguments as train.py: --config YAML [--data-dir D] [--output-dir O] [--resume] "
        "[section.key=value ...]. Run `hf-rec train --help` for details.",
        add_help=False,
    )

    ev = commands.add_parser("evaluate", help="evaluate a model on a dataset split; prints metrics as JSON",
                             description="Evaluate a saved or pushed model on a dataset split and print the metrics "
                                         "as JSON.")  # fmt: skip
    ev.add_argument("--model", required=True, help=MODEL_HELP)
    ev.add_argument("--data", required=True, help="dataset name (ml-100k, ml-1m, amazon-scientific, amazon-beauty) "
                                                  "or an interaction file")  # fmt: skip
    ev.add_argument("--data-dir", default=None, help="folder with the dataset files (default: $HF_REC_DATA_DIR/<name>)")
    ev.add_argument("--split", default="test", choices=["test", "validation"], help="split to evaluate (default: test)")
    ev.add_argument("--ks", type=int, nargs="+", default=[10, 20], help="metric cut-offs (default: 10 20)")
    ev.add_argument("--protocol", default="full", choices=["full", "sampled"],
                    help="full-catalogue ranking (default) or target + sampled negatives")  # fmt: skip
    ev.add_argument("--num-negatives", type=int, default=100, help="negatives per user for --protocol sampled "
                                                                    "(default: 100)")  # fmt: skip
    ev.add_argument("--include-seen", action="store_true",
                    help="rank the user's history items too (default: they are filtered)")  # fmt: skip
    ev.add_argument("--batch-size", type=int, default=256, help="users per batch (default: 256)")
    ev.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")
    ev.add_argument("--output", default=None, help="also write the metrics JSON to this file")

    rec = commands.add_parser("recommend", help="top-k next items for one history of raw item ids",
                              description="Recommend the next items for one history of raw item ids.")  # fmt: skip
    rec.add_argument("--model", required=True, help=MODEL_HELP)
    rec.add_argument("--history", required=True, help="comma-separated raw item ids, oldest first (e.g. 50,172,133)")
    rec.add_argument("--k", type=int, default=10, help="number of items (default: 10)")
    rec.add_argument("--include-seen", action="store_true", help="allow items of the history in the output")
    rec.add_argument("--ignore-unknown", action="store_true", help="drop unknown raw ids instead of failing")
    rec.add_argument("--user-feature", action="append", default=[], metavar="NAME=VALUE",
                     help="an attribute of the user, for models with user features (repeat for several: "
                          "--user-feature age=25 --user-feature gender=F)")  # fmt: skip
    rec.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")

    push = commands.add_parser("push", help="upload a run folder to the Hub (no checkpoints/tensorboard)",
                               description="Upload a run folder (weights, config, modeling files, item tokenizer, "
                                           "model card re-rendered for REPO_ID, metrics, curves, training config) in "
                                           "one commit. Uses $HF_ENDPOINT and $HF_TOKEN / the logged-in token.")  # fmt: skip
    push.add_argument("run_folder", metavar="RUN_FOLDER", help="folder written by `hf-rec train`")
    push.add_argument("repo_id", metavar="REPO_ID", help="target repo, user/name (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--revision", default=None, metavar="BRANCH", help="branch to commit to (created if missing; "
                                                                         "default: main)")  # fmt: skip
    push.add_argument("--message", default=None, help="commit message")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    push.add_argument("--with-app", action="store_true", help="also upload app.py + requirements.txt: a Gradio demo "
                                                              "that runs as a Space without hf_rec")  # fmt: skip

    card = commands.add_parser("card", help="re-render the model card (README.md) of a run folder",
                               description="Re-render a run folder's model card from metrics.json and "
                                           "training_config.yaml; prints it unless --output is given.")  # fmt: skip
    card.add_argument("run_folder", metavar="RUN_FOLDER", help="folder written by `hf-rec train`")
    card.add_argument("--repo-id", default=None, help="repo id used in the usage snippets (default: the folder path)")
    card.add_argument("--output", default=None, help="file to write (e.g. RUN_FOLDER/README.md); default: stdout")

    study = commands.add_parser("study", help="run a factor study (points x seeds), resumably, and report mean ± std",
                                description="Run every (point, seed) of a study file as an ordinary training run in "
                                            "OUTPUT_DIR/<point>/seed<k>/ (complete runs are skipped, half-finished "
                                            "ones resume), then write results.csv, results.md, segments.csv and plots "
                                            "into OUTPUT_DIR. See docs/factor-study.md.")  # fmt: skip
    study.add_argument("study", metavar="STUDY_YAML", help="study file, e.g. configs/studies/loss.yaml")
    study.add_argument("--output-dir", default=None, help="study folder (default: studies/<study name>)")
    study.add_argument("--seeds", type=_int_list, default=None,
                       help="comma-separated seeds to run, e.g. 0,1,2 (default: the file's seeds)")
    study.add_argument("--point", dest="points", action="append", default=None, metavar="NAME",
                       help="run only this point (repeat for several; default: all); the report covers these points")
    study.add_argument("--data-dir", default=None, help="folder with the dataset files (sets data.data_dir)")
    study.add_argument("--dry-run", action="store_true", help="check every run config and print the plan; train nothing")
    study.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from finished runs")
    study.add_argument("overrides", nargs="*", help="extra section.key=value overrides for every run")

    serve = commands.add_parser("serve", help="serve recommendations over HTTP (REST, FastAPI + uvicorn)",
                                description="Serve MODEL: POST /recommend (raw item ids in and out), GET /health, "
                                            "the schema at /docs. Needs the serve extra: pip install 'hf-rec[serve]'.")  # fmt: skip
    serve.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")
    serve.add_argument("--trust-remote-code", action="store_true",
                       help="allow a model that is no hf_rec family to run its own modeling code")  # fmt: skip
    serve.add_argument("--max-users", type=int, default=1024, help="users per request at most (default: 1024)")
    serve.add_argument("--max-k", type=int, default=1000, help="largest k accepted (default: 1000)")

    export = commands.add_parser("export", help="export the user encoder to ONNX (+ the item table), checked with "
                                                "onnxruntime", description="Write OUTPUT_DIR/user_encoder.onnx, "
                                 "item_embeddings.safetensors and export_config.json, and check onnxruntime against "
                                 "PyTorch on random histories. Needs the export extra.")  # fmt: skip
    export.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    export.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder to write (created if missing)")
    export.add_argument("--check-users", type=int, default=256, help="random histories to check (default: 256)")
    export.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")

    index = commands.add_parser("index", help="build a faiss index of the item embeddings (exact or approximate)",
                                description="Build a faiss inner-product index of MODEL's item embeddings (special "
                                            "ids left out; ids are item indices) and save it to OUTPUT_FILE. Needs the "
                                            "export extra.")  # fmt: skip
    index.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    index.add_argument("output_file", metavar="OUTPUT_FILE", help="index file to write (faiss format)")
    index.add_argument("--kind", default="flat", choices=["flat", "hnsw", "ivf"], help="flat (exact, default), hnsw or ivf")
    index.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")

    batch = commands.add_parser("batch-score", help="top-k for every user of a dataset or file, written to Parquet",
                                description="Recommend the next items for every user (whole histories) of a dataset "
                                            "or of a JSON-lines file of {\"user_id\", \"history\"} and write "
                                            "user_id, item_ids, scores to a Parquet file, in bounded chunks.")  # fmt: skip
    batch.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    source = batch.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="dataset name (ml-100k, ml-1m, amazon-scientific, amazon-beauty) or interaction file")
    source.add_argument("--histories", help="JSON-lines file, one {\"user_id\": ..., \"history\": [raw ids]} per line")
    batch.add_argument("--data-dir", default=None, help="folder with the dataset files (with --data)")
    batch.add_argument("--output", required=True, help="Parquet file to write")
    batch.add_argument("--k", type=int, default=10, help="items per user (default: 10)")
    batch.add_argument("--include-seen", action="store_true", help="allow items of the history in the output")
    batch.add_argument("--chunk-size", type=int, default=4096, help="users scored per chunk (default: 4096)")
    batch.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")

    demo = commands.add_parser("demo", help="a Gradio page to try the model (search, build a history, recommend)",
                               description="Serve a Gradio page for MODEL. With --data, a second tab shows real "
                                           "users' histories next to the recommendations. Needs the demo extra.")  # fmt: skip
    demo.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    demo.add_argument("--data", default=None, help="dataset for titles and real users (e.g. ml-1m)")
    demo.add_argument("--data-dir", default=None, help="folder with the dataset files")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    demo.add_argument("--revision", default=None, help="Hub branch, tag or commit sha (default: main)")
    return parser


# ---------------------------------------------------------------------------------------------- commands
def _evaluate(args) -> int:
    from .evaluation import Evaluator
    from .hub.push import load_recommender

    model, tokenizer = load_recommender(args.model, revision=args.revision)
    splits = _model_dataset(args, tokenizer)
    evaluator = Evaluator(
        splits[args.split],
        ks=args.ks,
        batch_size=args.batch_size,
        exclude_seen=not args.include_seen,
        protocol=args.protocol,
        num_negatives=args.num_negatives,
        show_progress=False,
    )
    metrics = evaluator.evaluate(model)
    text = json.dumps({"model": str(args.model), "data": args.data, "split": args.split, "protocol": args.protocol,
                       "metrics": metrics}, indent=1)  # fmt: skip
    if args.output:
        from .atomic import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def _model_dataset(args, tokenizer):
    """The splits of `args.data` with the options the model was trained with; its items must be the model's."""
    from .data import load_dataset_like

    return load_dataset_like(tokenizer, args.data, args.data_dir)


def _recommend(args) -> int:
    from .hub.push import load_recommender

    raw = [x.strip() for x in args.history.split(",") if x.strip()]
    if not raw:
        raise SystemExit("hf-rec recommend: --history is empty; give comma-separated raw item ids")
    bad = [pair for pair in args.user_feature if "=" not in pair]
    if bad:
        raise SystemExit(f"hf-rec recommend: --user-feature {bad[0]!r} is not NAME=VALUE (e.g. age=25)")
    attributes = dict(pair.split("=", 1) for pair in args.user_feature)
    model, tokenizer = load_recommender(args.model, revision=args.revision)
    if attributes and not tokenizer.user_feature_names:
        raise SystemExit(f"hf-rec recommend: {args.model} reads no user features (--user-feature {args.user_feature[0]})")
    try:
        users = [tokenizer.encode_user_features(attributes)] if tokenizer.user_feature_names else None
    except ValueError as err:
        raise SystemExit(f"hf-rec recommend: {err}") from None
    history = tokenizer.encode(raw, unknown="ignore" if args.ignore_unknown else "error")
    if not history:
        raise SystemExit(f"hf-rec recommend: none of the history items {raw} is known to the model")
    indices, scores = model.recommend([history], k=args.k, exclude_seen=not args.include_seen, user_features=users)
    rows = [
        {"rank": rank, "item_id": tokenizer.convert_index_to_id(i), "score": float(s),
         **({"text": tokenizer.text(i)} if tokenizer.has_texts and tokenizer.text(i) is not None else {})}
        for rank, (i, s) in enumerate(zip(indices[0].tolist(), scores[0].tolist()), start=1)
        if i >= 0
    ]  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max([len("item_id"), *(len(r["item_id"]) for r in rows)])
    print(f"{'rank':>4}  {'item_id':<{width}}  {'score':>10}  text")
    for r in rows:
        print(f"{r['rank']:>4}  {r['item_id']:<{width}}  {r['score']:>10.4f}  {r.get('text', '')}")
    return 0


def _push(args) -> int:
    from .hub.push import push_to_hub

    commit = push_to_hub(
        args.run_folder, args.repo_id, revision=args.revision, private=args.private,
        commit_message=args.message, create_pr=args.create_pr, with_app=args.with_app,
    )  # fmt: skip
    print(json.dumps({"repo_id": args.repo_id, "commit": commit.oid, "commit_url": commit.commit_url,
                      "pr_url": commit.pr_url}))  # fmt: skip
    return 0


def _card(args) -> int:
    from .hub.cards import card_from_run_folder

    folder = Path(args.run_folder)
    for needed in ("metrics.json", "training_config.yaml"):
        if not (folder / needed).is_file():
            raise SystemExit(f"hf-rec card: {folder} has no {needed} (not a finished run folder)")
    text = card_from_run_folder(folder, args.repo_id)
    if args.output:
        from .atomic import atomic_write_text

        atomic_write_text(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


def _study(args) -> int:
    from .study import run_from_args

    try:
        return run_from_args(args)
    except ValueError as err:  # a bad study file or override: one clear line, no traceback
        raise SystemExit(f"hf-rec study: {err}") from None


def _serve(args) -> int:
    try:
        import uvicorn

        from .serving.service import create_app
    except ImportError as err:
        raise ValueError(f"serving needs the serve extra ({err.name} is missing): pip install 'hf-rec[serve]'") from None
    app = create_app(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code,
                     max_users=args.max_users, max_k=args.max_k)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def _export(args) -> int:
    from .hub import load_recommender
    from .serving.export import export_onnx

    model, _ = load_recommender(args.model, revision=args.revision)
    config = export_onnx(model, args.output_dir, check_users=args.check_users)
    print(json.dumps({"output_dir": args.output_dir, **config["check"]}, indent=1))
    return 0


def _index(args) -> int:
    from .hub import load_recommender
    from .serving.index import build_index, save_index

    model, _ = load_recommender(args.model, revision=args.revision)
    index = build_index(model.get_item_embeddings(), model.config.special_ids, kind=args.kind)
    save_index(index, args.output_file)
    print(f"{args.kind} index of {index.ntotal} items written to {args.output_file}")
    return 0


def _batch_score(args) -> int:
    from .hub import load_recommender
    from .serving.batch import dataset_histories, jsonl_histories, write_recommendations

    model, tokenizer = load_recommender(args.model, revision=args.revision)
    if args.histories:
        histories = jsonl_histories(args.histories, tokenizer)
    else:
        histories = dataset_histories(_model_dataset(args, tokenizer)["test"])
    report = write_recommendations(model, tokenizer, histories, args.output, k=args.k,
                                   exclude_seen=not args.include_seen, chunk_size=args.chunk_size)  # fmt: skip
    print(json.dumps({"output": args.output, **report}, indent=1))
    return 0


def _demo(args) -> int:
    try:
        from .serving.demo import build_demo

        import gradio  # noqa: F401
    except ImportError as err:
        raise ValueError(f"the demo needs the demo extra ({err.name} is missing): pip install 'hf-rec[demo]'") from None
    build_demo(args.model, data=args.data, data_dir=args.data_dir, revision=args.revision).launch(
        server_name=args.host, server_port=args.port
    )
    return 0


COMMANDS = {"study": _study, "evaluate": _evaluate, "recommend": _recommend, "push": _push, "card": _card,
            "serve": _serve, "export": _export, "index": _index, "batch-score": _batch_score, "demo": _demo}


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from .training import main as train_main

        train_main(argv[1:], prog="hf-rec train")
        return 0
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    # argparse binds a trailing `nargs="*"` positional before later options, so `study X.yaml --seeds 0 a.b=1`
    # leaves `a.b=1` unparsed: dotted overrides are accepted wherever they appear.
    if unknown and getattr(args, "overrides", None) is not None and all("=" in u and not u.startswith("-") for u in unknown):
        args.overrides = list(args.overrides) + unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError) as err:  # bad input (unknown ids, missing files): one line, no traceback
        raise SystemExit(f"hf-rec {args.command}: {err}") from None


if __name__ == "__main__":
    sys.exit(main())
