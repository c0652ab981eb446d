"""ACES: a certified selector between a smoothed model and an accurate core model (Horvath, Mueller, Fischer & Vechev,
"Robust and Accurate -- Compositional Architectures for Randomized Smoothing", 2022).

Three parts: a certification model F (noise-trained), a selection model s (as in the paper's code, F itself:
``s_theta(z) = 1[H(softmax(F(z))) / log C <= theta]``, the normalized entropy of F's softmax) and a core model
(accurate, not robust, one clean forward pass).  With ``g_F(x) = argmax_c P(argmax F(x + e) = c)`` and the smoothed
selector ``g_s(x) = 1[P(s_theta(x + e) = 1) > 1/2]``, e ~ N(0, sigma^2 I), the composed classifier is

    g(x) = g_F(x)  if g_s(x) = 1,   else  core(x).

Certification (one sample set, n0 + n noisy forward passes of F, each giving F's class and its entropy): n0 samples
select F's top class c_A; on the n others ``p_F = CP_lower(#{argmax F = c_A}, n, alpha/2)`` and
``p_s = CP_lower(#{s_theta = 1}, n, alpha/2)`` (the selector's tested vote, 1, is fixed in advance, so it needs no
selection samples).  If ``p_s > 1/2`` and ``p_F >= 1/2`` the certificate is ``(c_A, min(R_s, R_F))`` with
``R = sigma Phi^-1(p)``: on that ball g_s = 1 and g_F = c_A, so g = c_A; by the union bound both bounds hold with
probability >= 1 - alpha.  ``theta >= 1`` selects every sample (entropies are clipped to [0, 1]): the selector is the
constant 1, known exactly, so all of alpha goes to F and the certificate is Cohen et al.'s CERTIFY on F from the same
samples (pure RS).  ``theta = 0`` selects only exactly one-hot softmaxes, so a trained network falls back to the core.

What a certificate means here:
* ``extra["certified"] = 1``: class c_A with radius min(R_s, R_F) > 0 (or 0 when p_F is exactly 1/2): g = c_A on the
  l2 ball, with probability >= 1 - alpha.
* selector certified 1 but ``p_F < 1/2``: ABSTAIN, radius 0 (g_F is undecided).
* otherwise the prediction is ``core(x)`` with radius 0 and ``extra["certified"] = 0``: a prediction WITHOUT a
  certificate.  It carries no guarantee at all -- not robustness, and not even that it is g's class at x (the selector
  may be undecided there).  Certified accuracy must count these inputs at no radius, r = 0 included; clean accuracy
  counts them.

Every theta of a sweep comes from the same samples: each sample's vote id is ``class * (T + 1) + b`` with b the number
of (sorted) thetas below its entropy, so ``s_theta_k = 1`` iff ``b <= k``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rsscale import harness, ledger, mutation
from rsscale.bounds import clopper_pearson_lower
from rsscale.certificate import ABSTAIN, Certificate
from rsscale.methods.base import Certifier, register
from rsscale.models import load_checkpoint
from rsscale.noise import Gaussian, NoiseDistribution
from rsscale.oracles import IntervalClassifier, dual_norm, sign_vector
from rsscale.smooth import abstains, check_inputs


def normalized_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H(softmax(z)) / log C`` per row, clipped to [0, 1] (0 for a one-hot softmax, 1 for the uniform one)."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1) / math.log(logits.shape[1])
    return entropy.clamp_(0.0, 1.0)


def check_thetas(thetas) -> list[float]:
    """Thetas as floats in [0, 1], or a ValueError."""
    values = [float(t) for t in np.atleast_1d(np.asarray(thetas, dtype=float))]
    if not values or any(not 0.0 <= t <= 1.0 for t in values):
        raise ValueError(f"theta must lie in [0, 1] (a normalized entropy), got {thetas}")
    return values


def entropy_vote(num_classes: int, thetas: Sequence[float]):
    """Vote function: ``argmax * (T + 1) + #{theta_k < entropy}`` for sorted ``thetas`` (module docstring)."""
    edges = torch.tensor(sorted(thetas), dtype=torch.float32)
    buckets = len(edges) + 1

    def vote(logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != num_classes:
            raise ValueError(f"the model scores {logits.shape[1]} classes, expected {num_classes}")
        entropy = normalized_entropy(logits)
        return logits.argmax(dim=1) * buckets + torch.searchsorted(edges.to(entropy.device), entropy)

    return vote


def _core_model(core) -> torch.nn.Module:
    if isinstance(core, (str, Path)):
        return load_checkpoint(core)[0]
    if not isinstance(core, torch.nn.Module):
        raise ValueError(f"core must be a torch.nn.Module or a checkpoint path, got {type(core).__name__}")
    return core


@register
class Aces(Certifier):
    """F's smoothed class where the entropy selector certifies F, else the core model's class (uncertified)."""

    name = "aces"
    summary = ("ACES (Horvath et al. 2022): entropy selector and F smoothed from one sample set (alpha/2 each), "
               "core model where F is not selected (radius 0, no certificate)")
    settings_fields = ("sigma", "theta", "n0", "n", "alpha")

    def __init__(self, model, num_classes: int, sigma: float, core=None, theta: float = 0.5, n0: int = 100,
                 n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000, device=None):
        if core is None:
            raise ValueError("aces needs a core model: core=<torch.nn.Module or checkpoint path>")
        self.theta = check_thetas(theta)[0]
        self.check_sampling(sigma, n0, n, alpha)
        self.noise = Gaussian(self.sigma)
        self.set_model(model, num_classes, device, batch_size)
        self.core = _core_model(core).to(self.device).eval()

    def certify_batch(self, xs: torch.Tensor, generator: torch.Generator) -> list[Certificate]:
        return self.certify_thetas(xs, [self.theta], generator)[0]

    @torch.inference_mode()
    def core_predictions(self, xs: torch.Tensor) -> list[int]:
        """The core model's class of each clean input (one forward pass each, in batches)."""
        out = []
        for start in range(0, len(xs), self.batch_size):
            logits = self.core(xs[start:start + self.batch_size].to(self.device, torch.float32))
            if logits.ndim != 2 or logits.shape[1] != self.num_classes:
                raise ValueError(f"the core model must return logits [batch, {self.num_classes}], "
                                 f"got {tuple(logits.shape)}")
            out += logits.argmax(dim=1).tolist()
        return out

    def certify_thetas(self, xs, thetas: Sequence[float], generator=None) -> list[list[Certificate]]:
        """Certificates of every theta (in the given order) from ONE set of n0 + n samples per input."""
        if isinstance(xs, (list, tuple)):
            xs = torch.stack(list(xs))
        check_inputs(xs, self.input_shape, batched=True)
        thetas = check_thetas(thetas)
        order = sorted(set(thetas))
        c, buckets = self.num_classes, len(order) + 1
        start = time.perf_counter()
        sampler = self.new_sampler(self.noise, c * buckets, entropy_vote(c, order))
        selection, estimation = sampler.counts(xs, self.n0, generator), sampler.counts(xs, self.n, generator)
        ledger.use("selection", selection)
        ledger.use("estimation", estimation)
        top = selection.view(len(xs), c, buckets).sum(2).argmax(dim=1)
        joint = estimation.view(len(xs), c, buckets)
        hits = joint[torch.arange(len(xs)), top].sum(1).numpy()
        selected_counts = joint.sum(1).cumsum(1).numpy()  # [:, k] = #{entropy <= theta_k}
        core = self.core_predictions(xs)
        seconds = (time.perf_counter() - start) / len(xs)
        dim = math.prod(xs.shape[1:])
        by_theta = {}
        for k, theta in enumerate(order):
            by_theta[theta] = self._certificates(theta, top.tolist(), hits, selected_counts[:, k], core, seconds, dim)
        return [by_theta[t] for t in thetas]

    def level(self, statement: str) -> float:
        """The bounds of ``f`` (p_F) and of the ``selector`` (p_s) at alpha/2 each."""
        return self.alpha / 2

    def _certificates(self, theta, top, hits, selected, core, seconds, dim) -> list[Certificate]:
        constant = theta >= 1.0  # every sample selected: g_s = 1 exactly, all of alpha to F (pure RS)
        p_f = np.atleast_1d(clopper_pearson_lower(hits, self.n, self.alpha if constant else self.level("f")))
        p_s = (np.ones(len(top)) if constant
               else np.atleast_1d(clopper_pearson_lower(selected, self.n, self.level("selector"))))
        certs = []
        for i, c_a in enumerate(top):
            chosen, decided = bool(p_s[i] > 0.5), not abstains(p_f[i])
            p_lower = float(min(p_s[i], p_f[i]))
            if chosen:
                prediction = c_a if decided else ABSTAIN
            else:
                prediction = core[i]
            certified = chosen and decided
            radii = self.noise.radii(p_lower if certified else 0.0, dim)
            certs.append(Certificate(
                prediction=prediction,
                radius=radii["l2"],
                p_lower=p_lower,
                forward_passes=self.n0 + self.n,
                seconds=seconds,
                radii=radii,
                extra={"theta": theta, "selected": int(chosen), "certified": int(certified), "count": int(hits[i]),
                       "count_select": int(selected[i]), "p_f": float(p_f[i]), "p_select": float(p_s[i]),
                       "radius_f": self.noise.radius(float(p_f[i])), "radius_select": self.noise.radius(float(p_s[i])),
                       "f_prediction": c_a if decided else ABSTAIN, "core_prediction": core[i], "core_passes": 1},
            ))
        return certs

    @classmethod
    def harness_cases(cls) -> list[harness.Case]:
        return [harness.case(cls.name, "selective-3class-d16", _selective_case, dim=16, positions=ACES_POSITIONS)]

    @classmethod
    def mutants(cls) -> list[mutation.Mutant]:
        loose = ("the case's positions leave p_s and p_F loose (rate <= 0.8 alpha after the change); a position with "
                 "F certain and P(s_theta = 1) just above 1/2 (the selector's bound alone decides), or with the "
                 "selector certain and F's top class just above 1/2, would catch it")
        return [mutation.reused_selection_sampler(cls, "selective-3class-d16", 300).surviving(loose),
                mutation.doubled_alpha(cls, "selective-3class-d16", 300).surviving(loose),
                mutation.full_level(cls, "selector", "selector-at-alpha", "the selector's bound p_s at alpha instead "
                                    "of alpha/2", "selective-3class-d16", 300).surviving(loose),
                mutation.full_level(cls, "f", "f-at-alpha", "F's bound p_F at alpha instead of alpha/2",
                                    "selective-3class-d16", 300).surviving(loose)]


# The harness case: F = a 3-class interval oracle whose logits are one-hot x 100 (normalized entropy ~0) where a second
# interval oracle says "confident", one-hot x 0.01 (entropy ~1) elsewhere; for theta in (0.01, 0.99) the selector is
# that second oracle, and the core model a third one: g = g_F where g_s = 1, else core, all functions of u . x
class SelectiveInterval(torch.nn.Module):
    """Logits ``onehot(classes(x)) * (100 if confident(x) says 1 else 0.01)`` (both interval oracles on the same u)."""

    def __init__(self, classes: IntervalClassifier, confident: IntervalClassifier):
        super().__init__()
        self.classes, self.confident = classes, confident
        self.input_shape = classes.input_shape

    def forward(self, x):
        return self.classes(x) * (0.01 + 99.99 * self.confident(x)[:, 1:2])


def selective_truth(classes: IntervalClassifier, confident: IntervalClassifier, core: IntervalClassifier, t,
                    noise: NoiseDistribution, reach: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """g's class and true l2 radius at projections t for ``g = g_F if g_s = 1 else core``: g is constant between the
    change points of g_F, g_s and core, so its radius is the distance to the nearest of those where g changes."""
    t = np.asarray(t, dtype=float)

    def g(points):
        points = np.asarray(points, dtype=float)
        plain = core.labels[(points[..., None] >= core.thresholds).sum(-1)]
        return np.where(confident.smoothed_class(points, noise) == 1, classes.smoothed_class(points, noise), plain)

    lo, hi = float(t.min()) - reach, float(t.max()) + reach
    points = np.concatenate([classes.change_points(noise, lo, hi), confident.change_points(noise, lo, hi),
                             core.thresholds])
    points = points[g(points - 1e-7) != g(points + 1e-7)]
    radius = np.abs(t[:, None] - points).min(axis=1) if points.size else np.full(t.shape, np.inf)
    return g(t), radius


class _CertifiedOnly:
    """A certifier whose uncertified predictions (ACES's core fallback, radius 0, no claim) read as ABSTAIN."""

    def __init__(self, certifier):
        self.certifier = certifier

    def certify_many(self, xs, generator=None):
        certs = self.certifier.certify_many(xs, generator=generator)
        for cert in certs:
            if not cert.extra["certified"]:
                cert.prediction = ABSTAIN
        return certs


#: Projections t = u . x of the ACES case: just inside the selector's boundary (t = -0.2: its bound p_s just above
#: 1/2), between the boundaries (both bounds matter), either side of F's boundary between classes 1 and 2 (p_F near
#: 1/2), and far inside class 2.
ACES_POSITIONS = tuple(harness.Position(f"t={t:g}", t) for t in (-0.15, 0.1, 0.45, 0.55, 1.3))


def _selective_case(trials, seed, alpha, factory):
    """F: classes 0 | 1 | 2 split at u . x = -0.5, 0.5, confident (entropy ~0) for u . x >= -0.2, else entropy ~1;
    theta = 0.5; core: class 2 (u a random-sign diagonal, d = 16); inputs at t in (-0.15, 0.1, 0.45, 0.55, 1.3); true
    l_q radius: distance to the nearest change of g = g_F where g_s = 1 else core, over ||u||_q* (tight at both the
    selector's and F's boundary)"""
    u = sign_vector(16, 2)
    classes = IntervalClassifier(u, [-0.5, 0.5], [0, 1, 2], num_classes=3)
    confident = IntervalClassifier(u, [-0.2], [0, 1], num_classes=2)
    core = IntervalClassifier(u, [], [2], num_classes=3)
    certifier = harness.build(factory, "aces", SelectiveInterval(classes, confident), 3, harness.N, alpha, 16,
                              core=core, theta=0.5)
    def make_inputs(position, count, gen, rng):
        return classes.inputs_at(np.full(count, position.value), gen)

    xs, index, predictions, radii = harness.collect(_CertifiedOnly(certifier), make_inputs, ACES_POSITIONS, trials,
                                                    seed)
    noise = Gaussian(harness.SIGMA)
    true_class, true_radius = selective_truth(classes, confident, core, classes.projections(xs), noise)
    return harness.Outcome(index, predictions, true_class, radii,
                           {q: true_radius / dual_norm(classes.u, q) for q in radii})
