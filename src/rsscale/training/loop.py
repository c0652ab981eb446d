"""One training loop for every objective: a recipe's optimizer and schedule, seeded shuffling, held-out monitoring.

An objective is a callable ``objective(model, x, y, generator)`` returning
``(loss, forward_passes, backward_passes)`` for the batch, or ``(loss,
forward_passes)`` when it runs one backward pass per forward pass.  A pass is
one input through the network: a batch of B inputs with m noisy copies each
is m * B passes.  If the objective has ``start_epoch(epoch, epochs)``, ``fit``
calls it before each epoch (0-based), e.g. for SmoothAdv's eps warm-up.

The optimizer, learning-rate schedule and batch size come from a
:class:`rsscale.training.recipes.Recipe` (default: the shared loop, Adam with
cosine decay).  Given a held-out split, ``fit`` records after every epoch the
base classifier's clean and noisy accuracy on it (not counted in the training
wall-clock), so a run that collapses (e.g. to one class) is seen, not
certified.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import torch
from tqdm.auto import tqdm

from rsscale.sampling import device_generator
from rsscale.training.recipes import Recipe, shared


@dataclass
class TrainingReport:
    """What a training run cost and reached.

    ``examples`` counts inputs presented (epochs x training-set size);
    ``forward_per_example`` and ``backward_per_example`` are the passes per
    presented input, i.e. the cost relative to Gaussian augmentation (1 and 1).
    ``history`` holds one record per epoch (mean loss, learning rate, held-out
    accuracies when a held-out split was given).
    """

    epochs: int
    steps: int
    seconds: float
    forward_passes: int
    final_loss: float
    backward_passes: int = 0
    examples: int = 0
    forward_per_example: float = float("nan")
    backward_per_example: float = float("nan")
    seconds_per_epoch: float = float("nan")
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class HeldOut:
    """A held-out split the loop evaluates after every epoch: clean accuracy and accuracy under ``N(0, sigma^2 I)``
    (the noise drawn from ``generator``, which the training draws never touch)."""

    x: torch.Tensor
    y: torch.Tensor
    sigma: float
    generator: torch.Generator

    def evaluate(self, model, device) -> dict:
        clean = evaluate_accuracy(model, self.x, self.y, device=device)
        noisy = evaluate_accuracy(model, self.x, self.y, self.sigma, self.generator, device=device)
        return {"val_accuracy_clean": clean, "val_accuracy_noisy": noisy}


def fit(model, objective, x_train, y_train, *, epochs: int = 30, batch_size: int | None = None,
        lr: float | None = None, weight_decay: float = 0.0, recipe: Recipe | None = None,
        held_out: HeldOut | None = None, generator: torch.Generator | None = None, device="cpu",
        progress: bool = True) -> TrainingReport:
    """Train ``model`` in place by minimising ``objective`` over the data.

    ``recipe`` sets the optimizer, schedule and batch size (default: the shared
    loop at ``lr``, ``batch_size`` and ``weight_decay``, 1e-3 and 64 when not
    given); ``batch_size`` or ``lr`` given with a recipe replace its own.  The
    generator drives both the shuffling and the objective's noise (on a CUDA
    device, through a device generator seeded from it), so the same seed gives
    the same weights on the same device.  A NaN or infinite loss stops the run
    with a ValueError naming the epoch and step (before it reaches the weights).
    """
    recipe = recipe or shared(1e-3 if lr is None else lr, 64 if batch_size is None else batch_size, weight_decay)
    if lr is not None and lr != recipe.lr:
        recipe = replace(recipe, lr=lr)
    batch_size = recipe.batch_size if batch_size is None else batch_size
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"need epochs >= 1, batch_size >= 1; got {epochs}, {batch_size}")
    generator = generator or torch.Generator().manual_seed(0)
    device = torch.device(device)
    model.to(device).train()
    optimizer = recipe.optimizer_for(model.parameters())
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    schedule = recipe.scheduler_for(optimizer, epochs, steps_per_epoch)
    noise_generator = device_generator(generator, device)
    start_epoch = getattr(objective, "start_epoch", None)
    passes, backward, examples, steps, loss_value = 0, 0, 0, 0, float("nan")
    history, seconds = [], 0.0
    bar = tqdm(range(epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        if start_epoch is not None:
            start_epoch(epoch, epochs)
        order = torch.randperm(len(x_train), generator=generator)
        epoch_lr, total = optimizer.param_groups[0]["lr"], 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x, y = x_train[idx].to(device), y_train[idx].to(device)
            loss, used, *rest = objective(model, x, y, noise_generator)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise ValueError(f"training diverged: the loss is {loss_value} at epoch {epoch + 1} of {epochs} "
                                 f"(step {steps + 1}); try a smaller --lr or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            passes += int(used)
            backward += int(rest[0]) if rest else int(used)
            examples += len(idx)
            total += loss_value * len(idx)
            steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        record = {"epoch": epoch + 1, "lr": epoch_lr, "loss": total / len(order)}
        if held_out is not None:
            record.update(held_out.evaluate(model, device))
            model.train()
        history.append(record)
        bar.set_postfix(loss=f"{loss_value:.3f}")
    model.eval()
    per = max(examples, 1)
    return TrainingReport(epochs, steps, seconds, passes, loss_value, backward_passes=backward, examples=examples,
                          forward_per_example=passes / per, backward_per_example=backward / per,
                          seconds_per_epoch=seconds / epochs, history=history)


@torch.inference_mode()
def evaluate_accuracy(model, x, y, sigma: float = 0.0, generator=None, batch_size: int = 1000, device="cpu") -> float:
    """Accuracy of the base classifier on ``x + N(0, sigma^2 I)`` (clean when sigma = 0)."""
    model.to(device).eval()
    noise_generator = device_generator(generator, torch.device(device)) if sigma else None
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device)
        if sigma:
            xb = xb + sigma * torch.randn(xb.shape, generator=noise_generator, device=device)
        correct += int((model(xb).argmax(1).cpu() == y[i : i + batch_size]).sum())
    return correct / len(x)
