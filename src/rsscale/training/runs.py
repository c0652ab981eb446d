"""Training runs from files: a dataset file in, a checkpoint (or fitted weights) and its provenance sidecar out.

Seeds: ``seed`` initialises the parameters (``torch.manual_seed``); the
training draws and the noisy test evaluation use generators seeded with
:func:`rsscale.run.derived_seed` ``(seed, 1)`` and ``(seed, 2)``, the held-out
split and its noisy evaluation ``(seed, 3)`` and ``(seed, 4)``.

Collapse: a classifier whose held-out accuracy ends below
:func:`collapse_threshold` (twice chance, 0.2 for ten classes), clean or under the training noise, is refused
(nothing is saved, the error names the accuracy and the threshold) unless the
caller marks collapse as a finding, in which case the checkpoint records
``collapsed`` with the reason.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch

from rsscale.data import HELD_OUT_FRACTION, Dataset
from rsscale.io import atomic_path
from rsscale.methods.projected import fit_projection
from rsscale.methods.sween import fit_weights
from rsscale.models import build_model, fit_to_dataset, load_models, save_checkpoint, training_sigma
from rsscale.provenance import utc_now, write_sidecar
from rsscale.run import derived_seed
from rsscale.training import build_objective, evaluate_accuracy, fit
from rsscale.training.denoiser import DenoiserObjective, compose, train_denoiser
from rsscale.training.loop import HeldOut, TrainingReport
from rsscale.training.recipes import RECIPES, published, shared

COLLAPSE = ("fail", "finding")


def collapse_threshold(num_classes: int) -> float:
    """Clean held-out accuracy below which a classifier counts as collapsed: twice chance, ``2 / C``, but never
    above halfway between chance and perfect, ``(1 + 1 / C) / 2`` (so 0.2 for ten classes, 0.75 for two)."""
    return min(2.0 / num_classes, (1.0 + 1.0 / num_classes) / 2.0)


def collapse_reason(history: Sequence[dict], num_classes: int) -> str | None:
    """Why the run counts as collapsed, or None: its last epoch's held-out accuracy, clean or under the training
    noise, is below the threshold.  The noisy accuracy is the base model's view of what the smoothed classifier
    certifies: a model that predicts one class under noise smooths to a constant classifier, whose one class is
    then "certified" at every radius."""
    if not history:
        return None
    last, threshold = history[-1], collapse_threshold(num_classes)
    for key, kind in (("val_accuracy_clean", "clean"), ("val_accuracy_noisy", "noisy")):
        if key in last and last[key] < threshold:
            return (f"collapsed: {kind} held-out accuracy {last[key]:.3f} after epoch {last['epoch']} is below "
                    f"{threshold:.3f} (twice chance for {num_classes} classes)")
    return None


def write_history(history: Sequence[dict], path: str | Path) -> None:
    """The per-epoch training log as CSV (one row per epoch)."""
    columns = list(dict.fromkeys(key for record in history for key in record))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def history_path(out: str | Path) -> Path:
    """Where the training log of the checkpoint ``out`` goes: ``<out stem>.training.csv``."""
    return Path(out).with_suffix(".training.csv")


def _test_accuracies(model, dataset: Dataset, sigma: float, seed: int, device: str) -> dict:
    """Clean and noisy (at ``sigma``) test accuracy, as the checkpoint metadata records them."""
    eval_gen = torch.Generator().manual_seed(derived_seed(seed, 2))
    return {"test_accuracy_clean": evaluate_accuracy(model, dataset.x_test, dataset.y_test, device=device),
            "test_accuracy_noisy": evaluate_accuracy(model, dataset.x_test, dataset.y_test, sigma, eval_gen,
                                                     device=device)}


def _save(model, out: str | Path, meta: dict, parameters: dict, started: str, device: str) -> None:
    """The checkpoint (with its sha256 file) and its sidecar ``out.json``; a model holding a NaN or infinite weight
    or buffer is refused (nothing is written)."""
    broken = [name for name, value in model.state_dict().items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:
        raise ValueError(f"training produced a model with NaN or infinite values (in {', '.join(broken[:3])}"
                         f"{', ...' if len(broken) > 3 else ''}); nothing was saved to {out}")
    sha = save_checkpoint(model.cpu(), out, **meta)
    write_sidecar(Path(out).with_suffix(".json"), parameters, started, device, checkpoint_sha256=sha, **meta)


def train_classifier(data: str, out: str | Path, *, sigma: float, arch: str = "cnn", arch_params: dict | None = None,
                     objective: str = "gaussian", objective_params: dict | None = None, epochs: int = 30,
                     batch_size: int | None = None, lr: float | None = None, recipe: str = "shared",
                     val_fraction: float = 0.1, collapse: str = "fail", seed: int = 0, device: str = "cpu",
                     progress: bool = True, parameters: dict | None = None) -> tuple[TrainingReport, dict]:
    """Train a base classifier on ``data`` with a registered objective; write the checkpoint ``out``, its sidecar
    (recording ``parameters``) and its per-epoch log (:func:`history_path`).  Returns the training report and the
    checkpoint's metadata.

    ``recipe``: ``shared`` (the shared loop; ``lr`` and ``batch_size`` default to 1e-3 and 64) or ``published``
    (the objective's published recipe, :func:`rsscale.training.recipes.published`; ``objective_params``,
    ``lr`` and ``batch_size``, when given, replace its own).  ``val_fraction`` of the training set is held out
    (:meth:`rsscale.data.Dataset.held_out`: stratified, the same examples for every model of the dataset whatever
    its seed, so SWEEN's weights can be fitted on examples no member trained on) and evaluated after every epoch;
    ``collapse`` = ``fail`` refuses a collapsed model (ValueError with the reason, after the log is written),
    ``finding`` saves it marked ``collapsed``.  The architecture parameters the dataset determines are filled in;
    ``projected`` fits its PCA subspace (rank ``arch_params["rank"]``) on the training inputs before training its
    base network.  These label-free statistics (normalization, PCA) use the whole training set, the held-out part
    included; the weights never see it.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {list(RECIPES)}")
    if collapse not in COLLAPSE:
        raise ValueError(f"collapse must be one of {list(COLLAPSE)}, got {collapse!r}")
    started = utc_now()
    dataset = Dataset.load(data)
    fit_idx, held_idx = dataset.held_out_split(val_fraction)
    x_fit, y_fit = dataset.x_train[fit_idx], dataset.y_train[fit_idx]
    arch_params = dict(arch_params or {})
    projected = arch == "projected"
    if projected:  # the base network sees the projection onto the top-rank PCA subspace, fitted below
        arch_params.setdefault("dim", dataset.dim)
        base_arch, base_params = arch_params.setdefault("base_arch", "cnn"), arch_params.setdefault("base_config", {})
    else:
        base_arch, base_params = arch, arch_params
    fit_to_dataset(base_arch, base_params, dataset)
    torch.manual_seed(seed)  # parameter initialisation
    model = build_model(arch, **arch_params)
    if projected:
        model.set_projection(*fit_projection(dataset.x_train, arch_params["rank"]))
    given = {key: value for key, value in (("batch_size", batch_size), ("lr", lr)) if value is not None}
    if recipe == "published":
        how = published(objective, epochs, objective_params=objective_params, **given)
        params = how.objective_params
    else:
        how, params = shared(**given), objective_params or {}
    loss = build_objective(objective, sigma=sigma, **params)
    generator = torch.Generator().manual_seed(derived_seed(seed, 1))
    held_out = None
    if len(held_idx):
        held_out = HeldOut(dataset.x_train[held_idx], dataset.y_train[held_idx], sigma,
                           torch.Generator().manual_seed(derived_seed(seed, 4)))
    report = fit(model, loss, x_fit, y_fit, epochs=epochs, recipe=how, held_out=held_out, generator=generator,
                 device=device, progress=progress)
    write_history(report.history, history_path(out))
    reason = collapse_reason(report.history, dataset.num_classes)
    if reason and collapse == "fail":
        raise ValueError(f"{reason}; nothing was saved to {out} (the per-epoch log is {history_path(out)}; mark "
                         f"collapse as a finding to keep such a model, flagged)")
    meta = {"dataset": dataset.name, "sigma": sigma, "objective": loss.describe(), "seed": seed,
            "recipe": how.describe(epochs), "held_out": {"fraction": val_fraction, "examples": len(held_idx)},
            "collapsed": reason, "training": report.as_dict(), **_test_accuracies(model, dataset, sigma, seed, device)}
    _save(model, out, meta, parameters or {}, started, device)
    return report, meta


def train_denoiser_for(data: str, classifier: str, out: str | Path, *, sigma: float, objective: str = "mse",
                       mse_epochs: int | None = None, depth: int = 4, width: int = 16, epochs: int = 20,
                       batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device: str = "cpu",
                       progress: bool = True, parameters: dict | None = None,
                       trust_checkpoint: bool = False) -> tuple[TrainingReport, dict]:
    """Train a DnCNN denoiser in front of the frozen ``classifier`` checkpoint; write the composed ``f(D(x))``
    checkpoint ``out`` and its sidecar.  Returns the training report and the checkpoint's metadata.
    ``trust_checkpoint``: load the classifier without a sha256 file."""
    started = utc_now()
    dataset = Dataset.load(data)
    [(base, base_meta)] = load_models([classifier], dataset, data, trust_checkpoint)
    torch.manual_seed(seed)  # the denoiser's initialisation
    model = compose(base, depth, width)
    loss = DenoiserObjective(model.classifier, sigma, objective, mse_epochs)
    generator = torch.Generator().manual_seed(derived_seed(seed, 1))
    report = train_denoiser(model, loss, dataset.x_train, epochs=epochs, batch_size=batch_size, lr=lr,
                            generator=generator, device=device, progress=progress)
    accuracies = _test_accuracies(model, dataset, sigma, seed, device)
    trained_with = base_meta.get("objective")
    meta = {"dataset": dataset.name, "sigma": sigma, "objective": {**loss.describe(), "depth": depth, "width": width},
            "seed": seed, "training": report.as_dict(), **accuracies,
            "classifier": {"checkpoint": classifier, "sha256": base_meta["sha256"], "sigma": base_meta.get("sigma"),
                           "objective": (trained_with.get("objective") if isinstance(trained_with, dict)
                                         else trained_with),
                           "train_seconds": base_meta.get("training", {}).get("seconds")}}
    _save(model, out, meta, parameters or {}, started, device)
    return report, meta


def fit_sween_weights(data: str, checkpoints: Sequence[str], out: str | Path, *, sigma: float | None = None,
                      max_examples: int = 500, copies: int = 8, steps: int = 300, seed: int = 0, device: str = "cpu",
                      parameters: dict | None = None, trust_checkpoint: bool = False) -> dict:
    """SWEEN's ensemble weights fitted on noisy copies of held-out training examples (members frozen): the
    dataset's held-out part (:meth:`rsscale.data.Dataset.held_out`), which :func:`train_classifier` never trains on.

    Writes the JSON record ``out`` that ``certify --params-file`` reads (``{"params": {"weights": [...]}, "fit":
    {...}}`` with the provenance fields) and returns its ``fit`` entry (examples, copies, steps, sigma, mixture).
    ``trust_checkpoint``: load the members without a sha256 file.
    """
    started = utc_now()
    dataset = Dataset.load(data)
    loaded = load_models(checkpoints, dataset, data, trust_checkpoint)
    sigma = training_sigma(loaded[0][1], sigma, checkpoints[0])
    fractions = {meta.get("held_out", {}).get("fraction", HELD_OUT_FRACTION) for _, meta in loaded}
    if len(fractions) != 1 or not 0 < min(fractions):
        raise ValueError(f"SWEEN's members must hold out one common part of the training set, got fractions "
                         f"{sorted(fractions)}; train them with the same val_fraction (> 0)")
    x_held, y_held = dataset.held_out(fractions.pop())
    examples = min(max_examples, len(x_held))
    generator = torch.Generator().manual_seed(derived_seed(seed, 0))
    pick = torch.randperm(len(x_held), generator=generator)[:examples]
    weights = fit_weights([m for m, _ in loaded], x_held[pick], y_held[pick], sigma,
                          copies=copies, steps=steps, generator=generator)
    mixture = torch.softmax(torch.tensor(weights), 0).tolist()
    record = {"examples": examples, "copies": copies, "steps": steps, "sigma": sigma, "mixture": mixture}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_sidecar(out, parameters or {}, started, device, params={"weights": weights}, fit=record,
                  checkpoint_sha256=[meta["sha256"] for _, meta in loaded])
    return record
