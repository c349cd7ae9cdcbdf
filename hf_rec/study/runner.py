"""Factor studies: one YAML names a base run config and the points to compare; each (point, seed) is one
ordinary training run in its own folder, and the results are gathered into one table with plots.

A study file (paths are relative to the study file)::

    base: ../sasrec-ml100k.yaml           # run config every point starts from
    seeds: [0, 1, 2]                      # training.seed of each repeat
    fixed_overrides: [training.num_epochs=50]   # optional: applied to every point first
    metric: ndcg@10                       # optional: the metric plotted (default ndcg@10)
    points:                               # either a list of named points ...
      - {name: sasrec, overrides: [model.loss_type=ce]}
      - {name: bert4rec, base: ../bert4rec-ml1m.yaml}   # a point may start from another base
    grid:                                 # ... or a mapping key -> values (cartesian product)
      model.hidden_size: [32, 64]

Override order for a run: ``fixed_overrides``, then the point's overrides, then ``training.seed``,
then the command line's extra overrides (e.g. ``data.data_dir=...``).

Run folders: ``<output>/<point>/seed<k>/`` (an ordinary `hf-rec train` folder). A run whose
``metrics.json`` is complete is skipped; a run with checkpoints resumes (``train(..., resume=True)``);
a run whose resolved config differs from the one recorded in its folder (``study_run.yaml``) is an error.
"""

from __future__ import annotations

import dataclasses

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..training import train
from ..training.config import RunConfig, atomic_write_text, load_run_config, parse_override

__all__ = ["Study", "StudyPoint", "load_study", "run_study", "run_folder", "is_complete"]

STUDY_KEYS = {"base", "seeds", "points", "grid", "fixed_overrides", "metric", "description"}
POINT_KEYS = {"name", "overrides", "base"}
RUN_RECORD = "study_run.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,=+\-]*$")


@dataclass
class StudyPoint:
    """One configuration of a study: a name (its folder), a base run config and its overrides."""

    name: str
    base: Path
    overrides: list[str]
    factors: dict[str, Any] = field(default_factory=dict)  # grid values of this point (empty for `points`)


@dataclass
class Study:
    """A parsed study file. `kind` is "points" or "grid"; `factors` are the grid keys in file order."""

    name: str
    path: Path
    points: list[StudyPoint]
    seeds: list[int]
    fixed_overrides: list[str]
    kind: str
    factors: list[str]
    metric: str = "ndcg@10"
    description: str = ""

    def select(self, names: list[str]) -> Study:
        """The same study restricted to the named points (in file order); an unknown name is an error."""
        known = [p.name for p in self.points]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"{self.path}: no point named {unknown}; the points are {known}")
        return dataclasses.replace(self, points=[p for p in self.points if p.name in names])

    def run_overrides(self, point: StudyPoint, seed: int, extra: list[str] = ()) -> list[str]:
        return [*self.fixed_overrides, *point.overrides, f"training.seed={int(seed)}", *extra]

    def run_config(self, point: StudyPoint, seed: int, extra: list[str] = ()) -> RunConfig:
        """The resolved run config of (point, seed); ValueError names the study file and point."""
        try:
            return load_run_config(point.base, self.run_overrides(point, seed, extra))
        except ValueError as err:
            raise ValueError(f"{self.path}: point {point.name!r} (base {point.base}): {err}") from None


def _fail(path: Path, key: str, message: str):
    raise ValueError(f"{path}: {key}: {message}")


def _override_list(path: Path, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(path, key, f"must be a list of 'section.key=value' strings, got {value!r}")
    for text in value:
        try:
            parse_override(text)
        except ValueError as err:
            _fail(path, key, str(err))
    return list(value)


def _base_path(path: Path, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        _fail(path, key, f"must be a path to a run config (relative to the study file), got {value!r}")
    base = (path.parent / value).resolve()
    if not base.is_file():
        _fail(path, key, f"run config {value!r} not found (looked for {base})")
    return base


def _format_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def load_study(path: str | Path) -> Study:
    """Parse and check a study file (structure only; `check_study` also builds every run config)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"study file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be a mapping with keys {sorted(STUDY_KEYS)}")
    unknown = sorted(set(raw) - STUDY_KEYS)
    if unknown:
        _fail(path, str(unknown), f"unknown keys; allowed: {sorted(STUDY_KEYS)}")
    if ("points" in raw) == ("grid" in raw):
        _fail(path, "points/grid", "give exactly one of 'points' (a list) or 'grid' (a mapping)")
    base = _base_path(path, "base", raw.get("base")) if "base" in raw else None
    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds)):  # fmt: skip
        _fail(path, "seeds", f"must be a non-empty list of distinct integers, got {seeds!r}")
    fixed = _override_list(path, "fixed_overrides", raw.get("fixed_overrides"))
    metric = raw.get("metric", "ndcg@10")
    if not isinstance(metric, str) or "@" not in metric:
        _fail(path, "metric", f"must be a metric name like 'ndcg@10', got {metric!r}")

    points: list[StudyPoint] = []
    factors: list[str] = []
    if "points" in raw:
        kind = "points"
        if not isinstance(raw["points"], list) or not raw["points"]:
            _fail(path, "points", f"must be a non-empty list of {{name, overrides}} mappings, got {raw['points']!r}")
        for i, entry in enumerate(raw["points"]):
            key = f"points[{i}]"
            if not isinstance(entry, dict):
                _fail(path, key, f"must be a mapping with keys {sorted(POINT_KEYS)}, got {entry!r}")
            bad = sorted(set(entry) - POINT_KEYS)
            if bad:
                _fail(path, f"{key}.{bad[0]}", f"unknown key; allowed: {sorted(POINT_KEYS)}")
            name = entry.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                _fail(path, f"{key}.name", f"must be a folder-safe name (letters, digits, _.,=+-), got {name!r}")
            point_base = _base_path(path, f"{key}.base", entry["base"]) if "base" in entry else base
            if point_base is None:
                _fail(path, f"{key}.base", "no 'base' at the top level or in the point")
            points.append(StudyPoint(name, point_base, _override_list(path, f"{key}.overrides", entry.get("overrides"))))
    else:
        kind = "grid"
        grid = raw["grid"]
        if base is None:
            _fail(path, "base", "a grid study needs a top-level 'base'")
        if not isinstance(grid, dict) or not grid:
            _fail(path, "grid", f"must be a non-empty mapping section.key -> list of values, got {grid!r}")
        for key, values in grid.items():
            try:
                parse_override(f"{key}=0")
            except ValueError as err:
                _fail(path, f"grid.{key}", str(err))
            if not isinstance(values, list) or not values:
                _fail(path, f"grid.{key}", f"must be a non-empty list of values, got {values!r}")
        factors = list(grid)
        for combo in itertools.product(*(grid[k] for k in factors)):
            values = dict(zip(factors, combo))
            name = ",".join(f"{k.split('.', 1)[1]}={v}" for k, v in values.items())  # folder name: plain str
            overrides = [f"{k}={_format_value(v)}" for k, v in values.items()]
            points.append(StudyPoint(name, base, overrides, factors=values))
    names = [p.name for p in points]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        _fail(path, "points", f"point names must be unique, repeated: {duplicates}")
    description = raw.get("description", "")
    return Study(path.stem, path, points, list(seeds), fixed, kind, factors, metric, str(description or ""))


def check_study(study: Study, seeds: list[int] | None = None, extra: list[str] = ()) -> dict[tuple[str, int], RunConfig]:
    """Build every (point, seed) run config, so that a bad override or an unknown model family fails
    before anything trains. Returns them keyed by (point name, seed)."""
    return {(p.name, s): study.run_config(p, s, extra) for p in study.points for s in (seeds or study.seeds)}


def run_folder(output_dir: str | Path, point: str, seed: int) -> Path:
    return Path(output_dir) / point / f"seed{int(seed)}"


def is_complete(folder: Path) -> bool:
    """True when `folder/metrics.json` is a finished run's results (written last, atomically)."""
    try:
        results = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and isinstance(results.get("test"), dict) and bool(results["test"])


def _record(run: RunConfig) -> dict[str, Any]:
    d = run.to_dict()
    d["data"].pop("data_dir", None)  # where the files live does not change the run
    return d


def run_study(
    study: Study | str | Path,
    output_dir: str | Path | None = None,
    seeds: list[int] | None = None,
    extra_overrides: list[str] = (),
    dry_run: bool = False,
    report: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) every (point, seed) of a study, then write the report.

    Args:
        study: a `Study` or the path of a study file.
        output_dir (*optional*): defaults to ``studies/<study name>``.
        seeds (*optional*): replaces the file's seeds.
        extra_overrides: appended to every run's overrides (e.g. ``data.data_dir=...``).
        dry_run: check every run config and print the plan; train nothing, write nothing.
        report: write the table and plots (:func:`hf_rec.study.report.write_report`) at the end.

    Returns:
        ``{"plan": [{point, seed, folder, status}], "report": {paths} or None}``; status is
        ``done`` (skipped), ``resume``, ``new`` (dry run) or ``trained``/``resumed``.
    """
    if not isinstance(study, Study):
        study = load_study(study)
    output_dir = Path(output_dir) if output_dir is not None else Path("studies") / study.name
    seeds = list(seeds) if seeds else study.seeds
    extra = list(extra_overrides)
    configs = check_study(study, seeds, extra)
    plan = []
    for point in study.points:
        for seed in seeds:
            folder = run_folder(output_dir, point.name, seed)
            run = configs[(point.name, seed)]
            recorded = folder / RUN_RECORD
            if recorded.is_file() and yaml.safe_load(recorded.read_text()) != _record(run):
                raise ValueError(
                    f"{folder}: was run with a different config than {study.path} now gives for point "
                    f"{point.name!r} (see {recorded}); use another --output-dir or delete the folder"
                )
            if is_complete(folder):
                status = "done"
            elif (folder / "checkpoints").is_dir():
                status = "resume"
            else:
                status = "new"
            plan.append({"point": point.name, "seed": seed, "folder": str(folder), "status": status})
    if dry_run:
        for row in plan:
            log(f"[dry-run] {row['point']} seed {row['seed']}: {row['status']} -> {row['folder']}")
        return {"plan": plan, "report": None}

    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output_dir / "study.yaml", yaml.safe_dump({
        "study": str(study.path), "kind": study.kind, "factors": study.factors, "metric": study.metric,
        "seeds": seeds, "extra_overrides": extra,
        "points": [{"name": p.name, "base": str(p.base), "overrides": [*study.fixed_overrides, *p.overrides],
                    "factors": p.factors} for p in study.points],
    }, sort_keys=False))  # fmt: skip
    for row in plan:
        if row["status"] == "done":
            log(f"{row['point']} seed {row['seed']}: complete, skipped")
            continue
        folder = Path(row["folder"])
        run = configs[(row["point"], row["seed"])]
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / RUN_RECORD, yaml.safe_dump(_record(run), sort_keys=False))
        resume = row["status"] == "resume"
        log(f"{row['point']} seed {row['seed']}: {'resuming' if resume else 'training'} in {folder}")
        start = time.perf_counter()
        train(run, folder, resume=resume)
        if not is_complete(folder):
            raise RuntimeError(f"{folder}: training returned but wrote no complete metrics.json")
        row["status"] = "resumed" if resume else "trained"
        row["seconds"] = time.perf_counter() - start
    paths = None
    if report:
        from .report import write_report

        paths = write_report(study, output_dir, seeds)
    return {"plan": plan, "report": paths}
