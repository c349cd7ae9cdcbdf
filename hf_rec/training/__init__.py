"""Training: run configuration (YAML + dotted overrides) and the one training loop."""

from .config import DataArgs, EvalArgs, RunConfig, TrainArgs, load_run_config
from .loop import build_model, train

__all__ = ["DataArgs", "EvalArgs", "RunConfig", "TrainArgs", "build_model", "load_run_config", "train", "main"]

# Where bad input (the config, the data files, the output folder) is detected, before any training step. A ValueError
# or FileNotFoundError raised through one of these is reported in one line; any other error keeps its traceback.
INPUT_CHECKS = {"load_run_config", "load_sequential_dataset", "check_output_dir", "latest_checkpoint"}


def is_input_error(err: BaseException) -> bool:
    import traceback

    return isinstance(err, (ValueError, FileNotFoundError)) and any(
        frame.name in INPUT_CHECKS for frame in traceback.extract_tb(err.__traceback__)
    )


def main(argv: list[str] | None = None, prog: str = "train.py") -> dict:
    """`train.py` / `hf-rec train`: parse arguments, load the YAML, train, print test metrics. A bad config, data file
    or output folder ends the program with one line `<prog>: <problem>` (exit status 1) before training starts."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train and evaluate a sequential recommender. Works as-is under `accelerate launch`.",
        epilog="Overrides: section.key=value, e.g. training.num_epochs=3 model.hidden_size=128 data.name=ml-1m",
    )
    parser.add_argument("--config", required=True, help="YAML run config (sections model, data, training, evaluation)")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset files (overrides data.data_dir)")
    parser.add_argument("--output-dir", default=None, help="run folder (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest intact epoch checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --output-dir (refused without it); its files are removed "
                             "only once this run's data and model are built")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="dotted overrides section.key=value")
    args = parser.parse_intermixed_args(argv)  # overrides may come before, between or after the options
    overrides = list(args.overrides)
    if args.data_dir is not None:
        overrides.append(f"data.data_dir={args.data_dir}")
    from pathlib import Path

    output_dir = args.output_dir or str(Path("runs") / Path(args.config).stem)
    try:
        run = load_run_config(args.config, overrides)
        results = train(run, output_dir, resume=args.resume, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as err:
        if not is_input_error(err):
            raise
        raise SystemExit(f"{prog}: {err}") from None
    return results
