"""Training: run configuration (YAML + dotted overrides) and the one training loop."""

from .config import DataArgs, EvalArgs, RunConfig, TrainArgs, load_run_config
from .loop import build_model, train

__all__ = ["DataArgs", "EvalArgs", "RunConfig", "TrainArgs", "build_model", "load_run_config", "train", "main"]


def main(argv: list[str] | None = None) -> dict:
    """`train.py` / `hf-rec train`: parse arguments, load the YAML, train, print test metrics."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train and evaluate a sequential recommender. Works as-is under `accelerate launch`.",
        epilog="Overrides: section.key=value, e.g. training.num_epochs=3 model.hidden_size=128 data.name=ml-1m",
    )
    parser.add_argument("--config", required=True, help="YAML run config (sections model, data, training, evaluation)")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset files (overrides data.data_dir)")
    parser.add_argument("--output-dir", default=None, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the last complete epoch checkpoint")
    parser.add_argument("overrides", nargs="*", help="dotted overrides section.key=value")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.data_dir is not None:
        overrides.append(f"data.data_dir={args.data_dir}")
    run = load_run_config(args.config, overrides)
    from pathlib import Path

    output_dir = args.output_dir or str(Path("runs") / Path(args.config).stem)
    results = train(run, output_dir, resume=args.resume)
    return results
