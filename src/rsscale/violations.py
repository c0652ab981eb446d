"""A search for violated input-dependent certificates (Sukenik, Kuvshinov & Guennemann, ICML 2022, Sec. 3).

A method that picks its noise per input (DDRS, QCRS, ANCER, ISRS, ...) defines the smoothed classifier

    g(x') = argmax_c P(f(x' + N(0, Sigma(x'))) = c),   Sigma(x') the noise the method picks at x' itself,

and its certificate for x claims g(x') = the certified class for every x' in the certified l2 ball around x.  On the
ball oracle (:class:`rsscale.oracles.BallClassifier`, f = inside on ``||x - c|| <= R``) g(x') is known for every
noise: for Sigma = s^2 I, P(inside) is a noncentral chi-square CDF (closed form); for a diagonal Sigma (ANCER) it is
estimated from ``mc_samples`` draws and counts only when a two-sided Clopper-Pearson interval at level
``confidence`` excludes 1/2.  Because g's inside region shrinks as the noise grows, a ball certified at one noise
level can reach points where the level the method picks gives the other class.

The search certifies inputs at distances ``U(0, far)`` from c, then for each certified ball (x, class k, radius r)
tries the points ``x + f r u`` for u the unit vectors towards c and away from it (the rays along which g changes)
and ``random_points`` uniformly random directions, at each fraction f of :data:`FRACTIONS` (the last one, 0.999,
is the boundary), asks the method for its noise at those points and counts a *violation* where g(x') != k.  The
table's ``first_sigma_input`` is the noise the first violated certificate was issued with
(:func:`certified_level`), ``first_sigma_point`` the noise the method picks at the violating point.  A
sound certificate (constant noise: Cohen; ISRS) is violated only with probability <= alpha per input (through its
confidence bound), so the count is the evidence: a violation of an unsound method is a concrete counterexample.
Each method says which noise it picks at a point itself (:attr:`rsscale.methods.base.Certifier.noise_at`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch

from rsscale import methods
from rsscale.bounds import clopper_pearson_interval
from rsscale.certificate import ABSTAIN
from rsscale.methods.base import Certifier
from rsscale.oracles import BallClassifier

#: Fractions of the certified radius at which points are tried along each direction (0.999: the boundary).
FRACTIONS = (0.25, 0.5, 0.75, 0.9, 0.999)
#: Columns of the ``violations`` table.
COLUMNS = ["method", "sound", "inputs", "certified", "points", "violations", "inputs_violated", "first_input",
           "first_distance", "first_class", "first_radius", "first_offset", "first_sigma_input", "first_sigma_point",
           "first_class_point", "seconds"]

def supported() -> list[str]:
    """The registered methods that declare the noise they pick at a point
    (:attr:`rsscale.methods.base.Certifier.noise_at`)."""
    return [name for name in methods.available() if methods.family(name).noise_at is not None]


def smoothed_classes(oracle: BallClassifier, points: torch.Tensor, levels: np.ndarray, rng: np.random.Generator,
                     mc_samples: int = 4000, confidence: float = 1e-6) -> np.ndarray:
    """g's class at each point under its own noise (module docstring); -1 where a Monte Carlo estimate is undecided."""
    distance = oracle.distances(points)
    if levels.ndim == 1:
        return oracle.smoothed_class(distance, levels).astype(int)
    flat = points.flatten(1).double().numpy() - oracle.center.double().numpy()
    noisy = flat[:, None] + levels[:, None] * rng.standard_normal((len(flat), mc_samples, flat.shape[1]))
    inside = (np.linalg.norm(noisy, axis=2) <= oracle.radius).sum(axis=1)
    low, high = clopper_pearson_interval(inside, mc_samples, confidence)
    return np.where(low > 0.5, oracle.inside, np.where(high < 0.5, oracle.outside, -1))


class SoftBall(torch.nn.Module):
    """Logits ``(R^2 - ||x - c||^2) / temperature`` for inside, 0 for outside: the same hard decision (argmax) as
    the ball oracle, so g is the oracle's, but differentiable, so gradient-based sigma searches see the ball."""

    def __init__(self, oracle: BallClassifier, temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.oracle, self.temperature, self.input_shape = oracle, float(temperature), oracle.input_shape

    def forward(self, x):
        score = (self.oracle.radius**2 - (x.flatten(1) - self.oracle.center).square().sum(dim=1)) / self.temperature
        logits = torch.zeros(len(x), self.oracle.num_classes, dtype=score.dtype, device=score.device)
        return logits.index_copy(1, torch.tensor([self.oracle.inside], device=score.device), score[:, None])


def directions(x: torch.Tensor, center: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Unit vectors ``[2 + count, d]``: towards ``center``, away from it, and ``count`` uniformly random ones."""
    toward = (center - x).double()
    toward = toward / toward.norm() if toward.norm() > 0 else torch.eye(len(x), dtype=torch.float64)[0]
    rand = torch.randn(count, len(x), generator=generator, dtype=torch.float64)
    return torch.cat([toward[None], -toward[None], rand / rand.norm(dim=1, keepdim=True)])


def search(label: str, certifier: Certifier, oracle: BallClassifier, xs: torch.Tensor, generator: torch.Generator,
           random_points: int = 8, mc_samples: int = 4000) -> dict:
    """Certify ``xs`` with ``certifier`` (registered as ``label``'s method), search every certified ball; one row."""
    method = label.split("+")[0]
    if certifier.noise_at is None:
        raise ValueError(f"no violation search for method {method!r}; supported: {supported()}")
    start = time.perf_counter()
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    certs = certifier.certify_many(xs, generator=generator)
    row = {"method": label, "sound": methods.info(method).sound, "inputs": len(xs), "points": 0, "violations": 0,
           "inputs_violated": 0, **{c: math.nan for c in COLUMNS if c.startswith("first_")}}
    row["certified"] = sum(c.prediction != ABSTAIN for c in certs)
    flat = xs.flatten(1).double()
    center = oracle.center.double()
    for i, cert in enumerate(certs):
        if cert.prediction == ABSTAIN or cert.radius <= 0:
            continue
        units = directions(flat[i], center, random_points, generator)
        offsets = torch.tensor(FRACTIONS, dtype=torch.float64)[:, None, None] * cert.radius * units
        points = (flat[i] + offsets.reshape(-1, flat.shape[1])).float().view(-1, *xs.shape[1:])
        levels = certifier.noise_at(points, generator)
        classes = smoothed_classes(oracle, points, np.asarray(levels, dtype=float), rng, mc_samples)
        bad = np.nonzero((classes >= 0) & (classes != cert.prediction))[0]
        row["points"] += len(points)
        row["violations"] += len(bad)
        if len(bad):
            row["inputs_violated"] += 1
            if row["violations"] == len(bad):
                j = int(bad[0])
                row.update(first_input=i, first_distance=float(oracle.distances(xs[i:i + 1])[0]),
                           first_class=cert.prediction, first_radius=cert.radius,
                           first_offset=float((points[j].flatten().double() - flat[i]).norm()),
                           first_sigma_input=certified_level(cert, certifier), first_sigma_point=_level(levels[j]),
                           first_class_point=int(classes[j]))
    row["seconds"] = time.perf_counter() - start
    return row


def certified_level(cert, certifier: Certifier) -> float:
    """The noise level the certificate was issued with (not a fresh choice at its input): the input-dependent sigma
    it recorded (``sigma_chosen``), the geometric mean of its diagonal theta (``theta_geomean``), else the
    certifier's constant sigma."""
    for key in ("sigma_chosen", "theta_geomean"):
        if key in cert.extra:
            return float(cert.extra[key])
    return float(certifier.sigma)


def _level(level) -> float:
    """A noise level as one number: sigma, or the geometric mean of a diagonal theta."""
    level = np.asarray(level, dtype=float)
    return float(np.exp(np.log(level).mean()))


def run_violations(specs: Mapping[str, dict], dim: int, ball_radius: float, sigma: float, inputs: int, far: float,
                   random_points: int = 8, seed: int = 0, mc_samples: int = 4000, temperature: float = 1.0,
                   report: Callable[[dict], object] | None = None,
                   recorded: Mapping[str, Mapping] | None = None) -> list[dict]:
    """One row per ``label -> params`` of ``specs`` (label ``method`` or ``method+variant``, params passed to
    :func:`rsscale.methods.build`): the ball oracle ``||x|| <= ball_radius`` in ``dim`` dimensions, the same ``inputs``
    inputs at distances U(0, far) for every method, seeded by ``seed``.  ``report`` gets each row as it is found.

    ``recorded`` maps labels to the rows of an earlier, interrupted run with the same settings: those methods are not
    searched again (each method's search draws from its own generator, so the others' rows do not change).
    """
    if dim < 1 or inputs < 1 or random_points < 0:
        raise ValueError(f"need dim >= 1, inputs >= 1, random_points >= 0; got {dim}, {inputs}, {random_points}")
    if not (ball_radius > 0 and far > 0):
        raise ValueError(f"ball_radius and far must be > 0, got {ball_radius}, {far}")
    oracle = BallClassifier(torch.zeros(dim), radius=ball_radius)
    model = SoftBall(oracle, temperature)
    rng = np.random.default_rng(seed)
    xs = oracle.inputs_at(rng.uniform(0.0, far, inputs), torch.Generator().manual_seed(seed))
    recorded = recorded or {}
    rows = []
    for label, params in specs.items():
        if label in recorded:
            row = dict(recorded[label])
            if row["inputs"] != inputs:
                raise ValueError(f"{label}: the recorded row comes from another search ({row['inputs']} inputs; this "
                                 f"one: {inputs}); remove it to start over")
        else:
            certifier = methods.build(label.split("+")[0], model=model, num_classes=2, sigma=sigma, device="cpu",
                                      **(params or {}))
            row = search(label, certifier, oracle, xs, torch.Generator().manual_seed(seed + 1), random_points,
                         mc_samples)
        rows.append(row)
        if report:
            report(row)
    return rows


def format_row(row: Mapping) -> str:
    first = "" if not row["violations"] else (
        f"; first: input {row['first_input']} at ||x - c|| = {row['first_distance']:.3f}, class {row['first_class']} "
        f"r = {row['first_radius']:.3f}, point at {row['first_offset']:.3f} has g = {row['first_class_point']} "
        f"(sigma {row['first_sigma_input']:.3f} -> {row['first_sigma_point']:.3f})")
    return (f"{row['method']}: {row['certified']}/{row['inputs']} certified, {row['points']} points, "
            f"{row['violations']} violations in {row['inputs_violated']} balls{first} ({row['seconds']:.1f} s)")
