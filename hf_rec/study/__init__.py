"""Factor studies: run a grid or list of configurations over several seeds, resumably, and report mean ± std
with plots. See docs/factor-study.md and `hf-rec study --help`."""

from .report import aggregate, collect_runs, run_row, write_report
from .runner import Study, StudyPoint, check_study, is_complete, load_study, run_folder, run_study

__all__ = [
    "Study",
    "StudyPoint",
    "aggregate",
    "check_study",
    "collect_runs",
    "is_complete",
    "load_study",
    "run_folder",
    "run_row",
    "run_study",
    "write_report",
]


def run_from_args(args) -> int:
    extra = list(args.overrides)
    if args.data_dir is not None:
        extra.append(f"data.data_dir={args.data_dir}")
    study = load_study(args.study)
    if getattr(args, "points", None):
        study = study.select(args.points)
    if args.report_only:
        from pathlib import Path

        out = Path(args.output_dir) if args.output_dir else Path("studies") / study.name
        paths = write_report(study, out, args.seeds)
        print("\n".join(f"{k}: {v}" for k, v in paths.items()))
        return 0
    result = run_study(study, args.output_dir, seeds=args.seeds, extra_overrides=extra, dry_run=args.dry_run)
    if result["report"]:
        print("\n".join(f"{k}: {v}" for k, v in result["report"].items()))
    return 0
