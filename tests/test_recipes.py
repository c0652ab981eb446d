"""Training recipes, held-out monitoring, the collapse gate and the equal-budget comparison of the training table."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from rsscale.data import train_val_split
from rsscale.experiments import training_methods
from rsscale.experiments.plan import Plan
from rsscale.models import build_model
from rsscale.training import build_objective, fit
from rsscale.training.loop import HeldOut
from rsscale.training.recipes import PUBLISHED, Recipe, published, shared
from rsscale.training.runs import collapse_reason, collapse_threshold, history_path, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def toy(n=60, seed=0):
    """Two separated classes of 4x4 images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (0.3 + 0.4 * y.float()).view(-1, 1, 1, 1) + 0.05 * torch.randn((n, 1, 4, 4), generator=g)
    return x.clamp(0, 1), y


def mlp(**kw):
    torch.manual_seed(0)
    return build_model("mlp", dim=16, num_classes=2, hidden=[8], input_shape=[1, 4, 4], **kw)


# --- recipes ---------------------------------------------------------------------------------------------------------

def test_published_schedules_scale_to_the_runs_epochs():
    assert published("gaussian", 90).milestone_epochs(90) == [30, 60]  # Cohen et al.: x0.1 every 30 of 90 epochs
    assert published("gaussian", 60).milestone_epochs(60) == [20, 40]
    assert published("macer", 440).milestone_epochs(440) == [200, 400]  # MACER: epochs 200 and 400 of 440
    assert published("macer", 60).milestone_epochs(60) == [27, 55]
    assert published("crt", 60).milestone_epochs(60) == [30, 45]
    assert published("smoothadv", 150).objective_params["warmup"] == 10  # eps warm-up: 10 of 150 epochs
    assert published("smoothadv", 60).objective_params["warmup"] == 4
    for name, spec in PUBLISHED.items():
        recipe = published(name, 60)
        assert recipe.optimizer == "sgd" and recipe.momentum == 0.9 and recipe.name == "published"
        assert recipe.lr == spec["lr"] and recipe.source.split(",")[0] in spec["source"]


def test_published_overrides_merge_into_the_objective_parameters_and_unknown_fields_are_refused():
    recipe = published("macer", 60, objective_params={"k": 2}, batch_size=32)
    assert recipe.objective_params == {"k": 2, "beta": 16.0, "gamma": 8.0} and recipe.batch_size == 32
    with pytest.raises(ValueError, match="no published recipe"):
        published("nonsense", 60)
    with pytest.raises(ValueError, match="unknown recipe fields"):
        published("macer", 60, momentum_typo=0.5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        Recipe(optimizer="rmsprop")
    with pytest.raises(ValueError, match="fractions of the run"):
        Recipe(schedule="step", milestones=(1.5,))


def test_learning_rate_factor_step_cosine_and_warmup():
    step = Recipe(schedule="step", milestones=(0.5,), gamma=0.1)
    assert [step.factor(t, 4, 3) for t in (0, 5, 6, 11)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1)]
    cosine = shared()
    assert cosine.factor(0, 4, 3) == 1.0 and cosine.factor(6, 4, 3) == pytest.approx(0.5)
    warm = Recipe(schedule="constant", warmup_epochs=1)
    assert [warm.factor(t, 4, 2) for t in (0, 1, 2)] == [0.5, 1.0, 1.0]


def test_fit_runs_the_recipes_optimizer_and_schedule_and_records_it_per_epoch():
    x, y = toy()
    recipe = Recipe(name="published", optimizer="sgd", lr=0.1, momentum=0.9, schedule="step", milestones=(0.5,),
                    batch_size=20)
    report = fit(mlp(), build_objective("gaussian", sigma=0.1), x, y, epochs=4, recipe=recipe,
                 generator=torch.Generator().manual_seed(0), progress=False)
    assert report.steps == 4 * 3
    assert [r["lr"] for r in report.history] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert all(math.isfinite(r["loss"]) for r in report.history)


def test_held_out_accuracy_is_recorded_every_epoch_without_touching_the_training_draws():
    x, y = toy()
    runs = []
    for held_out in (None, HeldOut(x[:10], y[:10], 0.1, torch.Generator().manual_seed(9))):
        model = mlp()
        report = fit(model, build_objective("gaussian", sigma=0.1), x, y, epochs=3, batch_size=20, lr=0.05,
                     held_out=held_out, generator=torch.Generator().manual_seed(0), progress=False)
        runs.append((model.state_dict(), report.history))
    (plain, plain_history), (monitored, history) = runs
    assert all(torch.equal(plain[k], monitored[k]) for k in plain)  # monitoring changes nothing it trains
    assert "val_accuracy_clean" not in plain_history[0]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert all(0.0 <= r["val_accuracy_clean"] <= 1.0 and 0.0 <= r["val_accuracy_noisy"] <= 1.0 for r in history)
    assert history[-1]["val_accuracy_clean"] == 1.0  # two well separated classes


def test_gaussian_with_m_copies_costs_m_passes_and_averages_the_copies_cross_entropy():
    x, y = toy(8)
    model = mlp()
    objective = build_objective("gaussian", sigma=0.3, m=4)
    loss, forward, backward = objective(model, x, y, torch.Generator().manual_seed(1))
    noise = 0.3 * torch.randn((4, *x.shape), generator=torch.Generator().manual_seed(1))
    expected = torch.stack([torch.nn.functional.cross_entropy(model(x + n), y) for n in noise]).mean()
    assert (forward, backward) == (32, 32) and float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert objective.describe()["passes_per_example"] == {"forward": 4, "backward": 4}


# --- the held-out split and the collapse gate ------------------------------------------------------------------------

def test_train_val_split_is_stratified_disjoint_complete_and_seeded():
    y = torch.arange(100) % 4
    fit_idx, held = train_val_split(y, 0.2, seed=3)
    assert len(held) == 20 and torch.bincount(y[held]).tolist() == [5, 5, 5, 5]
    assert sorted(torch.cat([fit_idx, held]).tolist()) == list(range(100))
    assert torch.equal(held, train_val_split(y, 0.2, seed=3)[1])
    assert not torch.equal(held, train_val_split(y, 0.2, seed=4)[1])
    assert len(train_val_split(y, 0.0)[1]) == 0
    with pytest.raises(ValueError, match="held-out fraction"):
        train_val_split(y, 1.0)


def test_collapse_threshold_is_twice_chance_capped_halfway_to_perfect():
    assert collapse_threshold(10) == pytest.approx(0.2)
    assert collapse_threshold(2) == pytest.approx(0.75)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from rsscale.data import load_digits

    path = tmp_path_factory.mktemp("recipes") / "digits.pt"
    load_digits().save(path)
    return path


@pytest.fixture(scope="module")
def featureless(tmp_path_factory):
    """Ten balanced classes of one and the same image: every classifier predicts one class for all (collapsed)."""
    from rsscale.data import Dataset

    y = torch.arange(200) % 10
    x = torch.full((200, 1, 4, 4), 0.5)
    path = tmp_path_factory.mktemp("featureless") / "same.pt"
    Dataset("same", x, y, x[:50].clone(), y[:50].clone(), 10).save(path)
    return path


def _train_constant(data, out, collapse):
    arch_params = {"hidden": [8], "mean": 0.5, "std": 0.25}  # the normalization a constant input cannot give
    return train_classifier(str(data), out, sigma=0.25, arch="mlp", arch_params=arch_params, epochs=2,
                            collapse=collapse, progress=False)


def test_a_collapsed_model_fails_its_run_with_the_reason_and_nothing_is_saved(featureless, tmp_path):
    out = tmp_path / "m.pt"
    with pytest.raises(ValueError, match=r"collapsed: clean held-out accuracy 0\.100 after epoch 2 is below 0\.200"):
        _train_constant(featureless, out, "fail")
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert history_path(out).exists()  # the per-epoch log says what happened


def test_a_collapsed_model_kept_as_a_finding_is_marked(featureless, tmp_path):
    out = tmp_path / "m.pt"
    _, meta = _train_constant(featureless, out, "finding")
    assert meta["collapsed"].startswith("collapsed:") and meta["held_out"] == {"fraction": 0.1, "examples": 20}
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["collapsed"] == meta["collapsed"]
    with history_path(out).open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[-1]["val_accuracy_clean"]) == pytest.approx(0.1)


def test_the_published_recipe_is_recorded_in_the_checkpoint(digits, tmp_path):
    out = tmp_path / "g.pt"
    report, meta = train_classifier(str(digits), out, sigma=0.25, arch="mlp", arch_params={"hidden": [16]},
                                    recipe="published", epochs=3, progress=False)
    assert meta["recipe"]["name"] == "published" and meta["recipe"]["optimizer"] == "sgd"
    assert meta["recipe"]["batch_size"] == 256 and meta["recipe"]["milestone_epochs"] == [1, 2]
    assert report.steps == 3 * math.ceil(1295 / 256) and meta["collapsed"] is None
    assert [round(r["lr"], 6) for r in report.history] == [0.1, 0.01, 0.001]


# --- the plan and the table ------------------------------------------------------------------------------------------

def _config(**section):
    return {"seed": 0, "datasets": {"d": {"name": "digits"}}, "model": {"arch": "cnn", "params": {}},
            "training": {"objective": "gaussian", "epochs": 60, "batch_size": 64, "lr": 0.001},
            "cohen": {"n0": 10, "n": 100, "alpha": 0.001, "batch_size": 100, "pack": 10},
            "training_methods": {"dataset": "d", "sigmas": [0.5], "objectives": {"gaussian": None, "macer": {"k": 4}},
                                 "n": 100, "max_inputs": 4, **section}}


def test_the_plan_trains_both_variants_and_the_equal_budget_baselines():
    plan = Plan(_config(equal_budget=["macer"], collapse="finding",
                        recipes={"objectives": {"gaussian": None, "macer": None}, "equal_budget": ["macer"]}))
    assert len(training_methods.runs(plan)) == 6
    models = plan.models
    assert models["results/models/d/gaussian-x4_sigma0.5.pt"]["objective_params"] == {"m": 4}
    published_macer = models["results/models/d/macer-published_sigma0.5.pt"]
    assert published_macer["recipe"] == "published" and published_macer["lr"] is None
    assert published_macer["collapse"] == "finding"
    assert models["results/models/d/gaussian-x16-published_sigma0.5.pt"]["objective_params"] == {"m": 16}
    assert models["results/models/d/macer_sigma0.5.pt"]["recipe"] == "shared"


def test_a_model_shared_with_the_main_study_keeps_the_stricter_collapse_gate():
    plan = Plan(_config(collapse="finding"))
    main_model = plan.model("d", 0.5)  # the main study's Gaussian model: collapse fails its job
    training_methods.runs(plan)
    assert plan.models[main_model]["collapse"] == "fail"
    assert plan.models["results/models/d/macer_sigma0.5.pt"]["collapse"] == "finding"
    with pytest.raises(ValueError, match="two different settings"):  # any other difference is still refused
        plan.model("d", 0.5, training={"lr": 0.5})


class FakeRun:
    """A run of 10 inputs, each certified correctly at radius ``acr`` but the last, certified at ``acr + spread``
    (the paired-bootstrap ratio of two such runs is exact when ``spread`` is 0)."""

    def __init__(self, checkpoint, sigma, acr, spread=0.0):
        self.parameters = {"checkpoint": str(checkpoint), "sigma": sigma}
        self._acr = acr
        self.path = checkpoint
        self.columns = {"idx": np.arange(10)}
        self.correct = np.ones(10, dtype=bool)
        self._radius = np.r_[np.full(9, acr), acr + spread]

    def radius(self):
        return self._radius

    def __len__(self):
        return 10

    def certified_accuracy(self, radius):
        return 0.5

    def acr(self):
        return float(self._radius.mean())


def _run(tmp_path, name, objective, acr, variant="published", collapsed=None, per_example=1, spread=0.0):
    checkpoint = tmp_path / f"{name}.pt"
    examples = 100
    checkpoint.with_suffix(".json").write_text(json.dumps({
        "objective": objective, "recipe": {"name": variant}, "collapsed": collapsed,
        "test_accuracy_clean": 0.9, "test_accuracy_noisy": 0.8,
        "training": {"seconds": float(per_example), "forward_passes": per_example * examples,
                     "backward_passes": per_example * examples, "examples": examples,
                     "history": [{"epoch": 1, "val_accuracy_clean": 0.9}]}}))
    return FakeRun(checkpoint, 0.5, acr, spread)


def test_rows_compare_with_the_equal_budget_baseline_and_never_with_a_collapsed_model(tmp_path):
    runs = [_run(tmp_path, "g", {"objective": "gaussian", "m": 1}, 0.4),
            _run(tmp_path, "g16", {"objective": "gaussian", "m": 16}, 0.5, per_example=16),
            _run(tmp_path, "macer", {"objective": "macer"}, 0.6, per_example=16),
            _run(tmp_path, "cons", {"objective": "consistency"}, 0.9, collapsed="collapsed: ...", per_example=2)]
    rows = {r["objective"]: r for r in training_methods.training_rows(runs, [0.0])}
    assert rows["macer"]["ACR_vs_equal_budget"] == pytest.approx(0.6 / 0.5)
    assert rows["macer"]["ACR_vs_gaussian"] == pytest.approx(0.6 / 0.4)
    assert rows["macer"]["passes_vs_gaussian"] == pytest.approx(16) and rows["macer"]["variant"] == "published recipe"
    assert rows["consistency"]["collapsed"] and math.isnan(rows["consistency"]["ACR_vs_gaussian"])
    assert math.isnan(rows["consistency"]["ACR_vs_equal_budget"])
    assert rows["macer"]["ACR_vs_equal_budget_low"] == rows["macer"]["ACR_vs_equal_budget_high"] == pytest.approx(1.2)


def test_the_ratio_to_a_baseline_has_a_paired_interval_over_the_inputs(tmp_path):
    runs = [_run(tmp_path, "g", {"objective": "gaussian", "m": 1}, 0.4),
            _run(tmp_path, "macer", {"objective": "macer"}, 0.4, spread=2.0)]  # one input certified far larger
    macer = {r["objective"]: r for r in training_methods.training_rows(runs, [0.0])}["macer"]
    assert macer["ACR_vs_gaussian"] == pytest.approx(0.6 / 0.4)
    assert macer["ACR_vs_gaussian_low"] == pytest.approx(1.0) and macer["ACR_vs_gaussian_high"] > 1.5


def test_the_cli_fails_a_collapsed_run_when_asked_and_otherwise_warns(featureless, tmp_path, capsys):
    from rsscale.cli import main

    command = ["train", "--data", str(featureless), "--arch", "mlp", "--arch-params",
               '{"hidden": [8], "mean": 0.5, "std": 0.25}', "--sigma", "0.25", "--epochs", "1", "--quiet",
               "--out", str(tmp_path / "m.pt")]
    assert main([*command, "--collapse", "fail"]) != 0
    assert "collapsed: clean held-out accuracy 0.100" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
    assert main(command) == 0
    assert "is marked collapsed" in capsys.readouterr().err


def test_a_model_that_predicts_one_class_under_noise_counts_as_collapsed():
    """Clean accuracy above the threshold is not enough: the smoothed classifier sees the noisy inputs."""
    fine = {"epoch": 3, "val_accuracy_clean": 0.29, "val_accuracy_noisy": 0.21}
    assert collapse_reason([fine], 10) is None
    constant_under_noise = {**fine, "val_accuracy_noisy": 0.15}
    assert collapse_reason([constant_under_noise], 10) == ("collapsed: noisy held-out accuracy 0.150 after epoch 3 "
                                                            "is below 0.200 (twice chance for 10 classes)")
    assert collapse_reason([{**fine, "val_accuracy_clean": 0.1}], 10).startswith("collapsed: clean held-out")
