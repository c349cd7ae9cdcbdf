"""Factor-study runner: parsing, resuming, skipping, aggregation (with a fake train), one tiny real study."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from hf_rec.study import check_study, load_study, run_study
from hf_rec.study import runner as study_runner

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "configs" / "sasrec-ml100k.yaml"


def write_study(tmp_path: Path, body: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"base": str(BASE), **body}, sort_keys=False))
    return path


class FakeTrain:
    """Writes a metrics.json whose numbers depend only on (hidden_size, seed); counts calls.
    ndcg@10 = hidden_size / 1000 + seed / 100; `fail_on` raises (a killed run) after writing a checkpoint."""

    def __init__(self, fail_on=()):
        self.calls = []
        self.fail_on = set(fail_on)

    def __call__(self, run, output_dir, resume=False):
        output_dir = Path(output_dir)
        key = (output_dir.parent.name, run.training.seed)
        self.calls.append((*key, resume))
        if key in self.fail_on:
            self.fail_on.discard(key)
            (output_dir / "checkpoints" / "epoch_0001").mkdir(parents=True)
            raise KeyboardInterrupt("killed")
        ndcg = run.model["hidden_size"] / 1000 + run.training.seed / 100
        results = {
            "test": {"ndcg@10": ndcg, "hr@10": 2 * ndcg, "num_users": 943},
            "best_epoch": 3 + run.training.seed,
            "best_validation": {"ndcg@10": ndcg + 0.05},
            "history": [{"epoch": e, "train_loss": 5.0 - e, "validation": {"ndcg@10": ndcg * e / 3}} for e in (1, 2, 3)],
            "training": {"train_seconds": 10.0 * (run.training.seed + 1), "epochs_run": 3},
            "test_segments": {
                "segments": {"cold_vs_warm": {"warm": {"ndcg@10": ndcg, "num_users": 943}}},
                "beyond_accuracy": {"coverage@10": 0.5},
            },
        }
        (output_dir / "metrics.json").write_text(json.dumps(results))
        return results


GRID = {"seeds": [0, 1, 2], "grid": {"model.hidden_size": [32, 64]}}


def test_grid_and_points_forms_expand(tmp_path):
    study = load_study(write_study(tmp_path, {**GRID, "grid": {"model.hidden_size": [32, 64], "model.num_hidden_layers": [1, 2]}}))
    assert study.kind == "grid" and study.factors == ["model.hidden_size", "model.num_hidden_layers"]
    assert [p.name for p in study.points] == ["hidden_size=32,num_hidden_layers=1", "hidden_size=32,num_hidden_layers=2",
                                              "hidden_size=64,num_hidden_layers=1", "hidden_size=64,num_hidden_layers=2"]  # fmt: skip
    assert study.points[1].overrides == ["model.hidden_size=32", "model.num_hidden_layers=2"]
    run = study.run_config(study.points[3], seed=7)
    assert (run.model["hidden_size"], run.model["num_hidden_layers"], run.training.seed) == (64, 2, 7)

    points = load_study(write_study(tmp_path, {
        "seeds": [1], "fixed_overrides": ["training.num_epochs=2", "model.loss_type=bce"],
        "points": [{"name": "a", "overrides": ["model.loss_type=ce"]}, {"name": "b"}]}, "p.yaml"))  # fmt: skip
    assert points.kind == "points" and [p.name for p in points.points] == ["a", "b"]
    configs = check_study(points)
    assert configs[("a", 1)].model["loss_type"] == "ce"  # the point's override wins over fixed_overrides
    assert configs[("b", 1)].model["loss_type"] == "bce" and configs[("b", 1)].training.num_epochs == 2


def test_every_shipped_study_parses():
    studies = sorted((REPO / "configs" / "studies").glob("*.yaml"))
    assert {p.stem for p in studies} >= {"algorithm", "loss", "model-size", "history-length", "regularisation",
                                         "item-information", "acceleration"}  # fmt: skip
    for path in studies:
        study = load_study(path)
        assert study.points and study.seeds
        configs = check_study(study, seeds=[0])  # every point's run config is valid, nothing runs
        assert len(configs) == len(study.points)


@pytest.mark.parametrize(
    "body, key",
    [
        ({"seeds": [0], "points": [{"name": "a"}, {"name": "b", "overides": []}]}, "points[1].overides"),
        ({"seeds": [0], "points": [{"name": "a", "overrides": ["training.num_epochs"]}]}, "points[0].overrides"),
        ({"seeds": [0], "points": [{"name": "a/b"}]}, "points[0].name"),
        ({"seeds": [0], "points": [{"name": "a"}], "grid": {"model.hidden_size": [1]}}, "points/grid"),
        ({"seeds": "0", "grid": {"model.hidden_size": [8]}}, "seeds"),
        ({"seeds": [0], "grid": {"hidden_size": [8]}}, "grid.hidden_size"),
        ({"seeds": [0], "grid": {"model.hidden_size": 8}}, "grid.model.hidden_size"),
        ({"seeds": [0], "points": [{"name": "a", "base": "missing.yaml"}]}, "points[0].base"),
        ({"seeds": [0], "grid": {"model.hidden_size": [8]}, "metrics": "ndcg@10"}, "unknown keys"),
    ],
)
def test_bad_study_file_names_file_and_key(tmp_path, body, key):
    path = write_study(tmp_path, body)
    with pytest.raises(ValueError) as err:
        load_study(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_bad_point_config_fails_before_training(tmp_path, monkeypatch):
    bad_base = tmp_path / "bad.yaml"
    bad_base.write_text("model: {family: nosuchfamily}\n")
    path = write_study(tmp_path, {"seeds": [0], "points": [{"name": "ok"}, {"name": "new-family", "base": "bad.yaml"}]})
    fake = FakeTrain()
    monkeypatch.setattr(study_runner, "train", fake)
    with pytest.raises(ValueError, match=r"s\.yaml: point 'new-family'.*model.family must be one of"):
        run_study(path, tmp_path / "out")
    assert fake.calls == []  # nothing trained


def test_resume_skips_complete_and_resumes_half_finished(tmp_path, monkeypatch):
    path = write_study(tmp_path, GRID)
    out = tmp_path / "out"
    fake = FakeTrain(fail_on={("hidden_size=64", 1)})
    monkeypatch.setattr(study_runner, "train", fake)
    with pytest.raises(KeyboardInterrupt):
        run_study(path, out, log=lambda s: None)
    assert [c[:2] for c in fake.calls] == [("hidden_size=32", 0), ("hidden_size=32", 1), ("hidden_size=32", 2),
                                           ("hidden_size=64", 0), ("hidden_size=64", 1)]  # fmt: skip
    fake.calls.clear()
    result = run_study(path, out, log=lambda s: None)
    # finished runs are not rerun; the killed one resumes from its checkpoint; the last one starts fresh
    assert fake.calls == [("hidden_size=64", 1, True), ("hidden_size=64", 2, False)]
    assert [r["status"] for r in result["plan"]] == ["done"] * 4 + ["resumed", "trained"]
    fake.calls.clear()
    run_study(path, out, log=lambda s: None)
    assert fake.calls == []

    # a run folder made with a different config is never silently mixed in
    changed = write_study(tmp_path, {**GRID, "fixed_overrides": ["training.num_epochs=3"]})
    with pytest.raises(ValueError, match="different config"):
        run_study(changed, out, log=lambda s: None)


def test_aggregation_mean_std_over_seeds(tmp_path, monkeypatch):
    path = write_study(tmp_path, GRID)
    out = tmp_path / "out"
    monkeypatch.setattr(study_runner, "train", FakeTrain())
    result = run_study(path, out, log=lambda s: None)
    rows = {r["point"]: r for r in csv.DictReader(open(result["report"]["csv"]))}
    assert list(rows) == ["hidden_size=32", "hidden_size=64"]
    r = rows["hidden_size=64"]
    # ndcg@10 over seeds 0, 1, 2 = 0.064, 0.074, 0.084: mean 0.074, sample std 0.01
    assert float(r["test/ndcg@10_mean"]) == pytest.approx(0.074)
    assert float(r["test/ndcg@10_std"]) == pytest.approx(0.01)
    assert float(r["test/hr@10_mean"]) == pytest.approx(0.148)
    assert float(r["test/hr@10_std"]) == pytest.approx(0.02)
    assert float(r["train_seconds_mean"]) == pytest.approx(20.0) and float(r["train_seconds_std"]) == pytest.approx(10.0)
    assert float(r["best_epoch_mean"]) == pytest.approx(4.0)
    assert float(r["gap_val_test/ndcg@10_mean"]) == pytest.approx(0.05)
    assert float(r["test/coverage@10_mean"]) == pytest.approx(0.5)
    assert r["model.hidden_size"] == "64" and r["n_seeds"] == "3"
    md = Path(result["report"]["markdown"]).read_text()
    assert "| hidden_size=64 | 3 | 0.0740 ± 0.0100 |" in md
    seg = list(csv.DictReader(open(result["report"]["segments"])))
    assert {(s["point"], s["grouping"], s["segment"]) for s in seg} >= {("hidden_size=32", "cold_vs_warm", "warm")}
    for key in ("factor_plot", "curves_plot"):
        assert Path(result["report"][key]).stat().st_size > 1000


def test_dry_run_trains_and_writes_nothing(tmp_path, monkeypatch):
    path = write_study(tmp_path, GRID)
    fake = FakeTrain()
    monkeypatch.setattr(study_runner, "train", fake)
    result = run_study(path, tmp_path / "out", seeds=[5], dry_run=True, log=lambda s: None)
    assert fake.calls == [] and not (tmp_path / "out").exists()
    assert [(r["point"], r["seed"], r["status"]) for r in result["plan"]] == [("hidden_size=32", 5, "new"),
                                                                              ("hidden_size=64", 5, "new")]  # fmt: skip


def test_tiny_real_study_end_to_end(tmp_path, ml100k_dir):
    """2 points x 2 seeds of a real (1-epoch, tiny) SASRec on ML-100K through the CLI entry point."""
    from hf_rec.cli import main

    path = write_study(tmp_path, {
        "seeds": [0, 1],
        "fixed_overrides": ["model.hidden_size=16", "model.max_position_embeddings=20", "model.num_attention_heads=1",
                            "model.num_hidden_layers=1", "training.num_epochs=1", "training.batch_size=256",
                            "evaluation.batch_size=1024"],
        "points": [{"name": "ce", "overrides": ["model.loss_type=ce"]},
                   {"name": "bce", "overrides": ["model.loss_type=bce"]}],
    })  # fmt: skip
    assert main(["study", str(path), "--output-dir", str(tmp_path / "out"), "--data-dir", str(ml100k_dir)]) == 0
    for point in ("ce", "bce"):
        for seed in (0, 1):
            results = json.loads((tmp_path / "out" / point / f"seed{seed}" / "metrics.json").read_text())
            segments = results["test_segments"]
            assert sum(m["num_users"] for m in segments["segments"]["history_length"].values()) == 943
            assert 0 < segments["beyond_accuracy"]["coverage@10"] <= 1
    rows = {r["point"]: r for r in csv.DictReader(open(tmp_path / "out" / "results.csv"))}
    assert set(rows) == {"ce", "bce"} and all(r["n_seeds"] == "2" for r in rows.values())
    assert all(float(r["test/ndcg@10_mean"]) > 0 for r in rows.values())


def test_cli_accepts_overrides_after_options(tmp_path, monkeypatch):
    """`hf-rec study X.yaml --seeds 0 training.num_epochs=2`: overrides after options reach every run."""
    import hf_rec.study as study_pkg
    from hf_rec.cli import main

    seen = {}

    def fake_run_from_args(args):
        seen["overrides"], seen["seeds"] = list(args.overrides), args.seeds
        return 0

    monkeypatch.setattr(study_pkg, "run_from_args", fake_run_from_args)
    assert main(["study", "some.yaml", "--seeds", "0,2", "training.num_epochs=2", "model.hidden_size=8"]) == 0
    assert seen == {"overrides": ["training.num_epochs=2", "model.hidden_size=8"], "seeds": [0, 2]}
    with pytest.raises(SystemExit):
        main(["study", "some.yaml", "--seeds", "0", "--no-such-flag"])


def test_point_selection_runs_only_the_named_points(tmp_path, monkeypatch):
    """`hf-rec study X.yaml --point NAME` (repeatable) trains only those points; grid names contain commas."""
    from hf_rec.cli import main

    path = write_study(tmp_path, {"seeds": [0], "grid": {"model.hidden_size": [32, 64], "model.num_hidden_layers": [1, 2]}})
    fake = FakeTrain()
    monkeypatch.setattr(study_runner, "train", fake)
    out = tmp_path / "out"
    assert main(["study", str(path), "--output-dir", str(out), "--point", "hidden_size=64,num_hidden_layers=2",
                 "--point", "hidden_size=32,num_hidden_layers=1"]) == 0  # fmt: skip
    assert sorted(c[0] for c in fake.calls) == ["hidden_size=32,num_hidden_layers=1", "hidden_size=64,num_hidden_layers=2"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["point"] for r in rows] == ["hidden_size=32,num_hidden_layers=1", "hidden_size=64,num_hidden_layers=2"]
    with pytest.raises(SystemExit, match="no point named"):
        main(["study", str(path), "--output-dir", str(out), "--point", "hidden_size=128"])


def test_points_with_different_accelerator_settings_run_in_one_process(tmp_path, ml100k_dir):
    """accelerate allows one AcceleratorState per process: a study whose points change mixed precision must still run
    every point (the acceleration study does), and a later plain run in the same process must work too."""
    path = write_study(tmp_path, {
        "seeds": [0],
        "fixed_overrides": ["model.hidden_size=16", "model.max_position_embeddings=20", "model.num_attention_heads=1",
                            "model.num_hidden_layers=1", "training.num_epochs=1", "training.batch_size=256",
                            "evaluation.batch_size=1024"],
        "grid": {"training.mixed_precision": ["no", "bf16"]},
    })  # fmt: skip
    result = run_study(path, tmp_path / "out", extra_overrides=[f"data.data_dir={ml100k_dir}"], log=lambda s: None)
    assert [r["status"] for r in result["plan"]] == ["trained", "trained"]
    for point in ("mixed_precision=no", "mixed_precision=bf16"):
        metrics = json.loads((tmp_path / "out" / point / "seed0" / "metrics.json").read_text())
        assert metrics["training"]["mixed_precision"] == point.split("=")[1]
    from hf_rec.training import load_run_config, train

    run = load_run_config(path.parent / "out" / "mixed_precision=no" / "seed0" / "training_config.yaml")
    assert train(run, tmp_path / "again")["training"]["mixed_precision"] == "no"
