"""RS-aware training objectives: each loss does what its paper says, shares ``fit``, and counts its passes."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, softmax
from scipy.stats import norm

from rsscale.cli import main
from rsscale.models import build_model
from rsscale.training import OBJECTIVES, build_objective, fit
from rsscale.training._common import draw_noise, noisy_logits
from rsscale.training.consistency import consistency_loss
from rsscale.training.crt import crt_loss
from rsscale.training.denoiser import DenoiserObjective
from rsscale.training.macer import PROB_EPS, macer_loss
from rsscale.training.smoothadv import SmoothAdv, smoothed_nll

SHAPE = (1, 4, 4)


pytestmark = pytest.mark.usefixtures("one_thread")


def toy(n=96, seed=0):
    """Two well separated classes in [0, 1]^16: bright and dark 4x4 images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (0.3 + 0.4 * y.float()).view(-1, 1, 1, 1) + 0.05 * torch.randn((n, *SHAPE), generator=g)
    return x.clamp(0, 1), y


def mlp(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("mlp", dim=16, num_classes=2, hidden=[16], input_shape=list(SHAPE), **kw)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def linear(weight):
    """A bias-free linear classifier with the given weight matrix ``[classes, inputs]`` (float64)."""
    model = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(weight, dtype=torch.float64))
    return model


#: Three classes on R^2; per example, one noise copy where the label wins (class 1 or 2 the runner-up) and one where
#: another class wins by far: the smoothed loss weights the first, the mean per-copy cross-entropy the second.
W3 = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
X3 = torch.tensor([[0.1, 0.0], [0.0, 0.2]], dtype=torch.float64)
Y3 = torch.tensor([0, 1])
NOISE3 = torch.tensor([[[2.9, 1.5], [-2.0, 2.8]], [[-2.1, -2.0], [4.0, -1.2]]], dtype=torch.float64)  # [m=2, B=2, 2]


# Small settings for every objective (the teacher of crt is filled in where needed).
SMALL = {"gaussian": {}, "smoothadv": {"m": 2, "steps": 2, "eps": 0.25, "warmup": 1}, "macer": {"k": 4},
         "consistency": {"m": 2}, "crt": {"m": 1}}


@pytest.fixture(scope="module")
def teacher():
    x, y = toy()
    model = mlp(seed=7)
    fit(model, build_objective("gaussian", sigma=0.25), x, y, epochs=5, batch_size=32, lr=1e-2, generator=gen(7),
        progress=False)
    return model


def make(name, teacher, sigma=0.25, **overrides):
    params = {**SMALL[name], **overrides}
    if name == "crt":
        params.setdefault("teacher", teacher)
    return build_objective(name, sigma=sigma, **params)


# --- registry and parameters -------------------------------------------------------------------------------------


def test_registry_names_and_bad_parameters_are_value_errors():
    assert set(OBJECTIVES) == {"gaussian", "smoothadv", "macer", "consistency", "crt"}
    with pytest.raises(ValueError, match="unknown training objective 'nope'"):
        build_objective("nope", sigma=0.25)
    with pytest.raises(ValueError, match="bad parameters for training objective 'macer'.*'kk'"):
        build_objective("macer", sigma=0.25, kk=8)
    with pytest.raises(ValueError, match="training objective 'macer': k must be an integer >= 1, got 0"):
        build_objective("macer", sigma=0.25, k=0)
    with pytest.raises(ValueError, match="'smoothadv': eps must be a finite number >= 0"):
        build_objective("smoothadv", sigma=0.25, eps=-1)
    with pytest.raises(ValueError, match="'consistency': m must be an integer >= 1, got 1.5"):
        build_objective("consistency", sigma=0.25, m=1.5)
    with pytest.raises(ValueError, match="'crt': the crt objective needs a teacher"):
        build_objective("crt", sigma=0.25)
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0, got -1.0"):
        build_objective("macer", sigma=-1)
    # the published per-sigma defaults
    assert build_objective("macer", sigma=0.25).describe()["lam"] == 12.0
    assert build_objective("macer", sigma=1.0).describe()["lam"] == 4.0
    assert build_objective("consistency", sigma=0.5).describe()["lam"] == 20.0
    assert build_objective("macer", sigma=0.25).describe()["k"] == 16


# --- MACER -------------------------------------------------------------------------------------------------------


def test_macer_hinge_is_zero_when_every_margin_exceeds_gamma_and_its_gradient_is_the_ce_gradient():
    k, batch, classes = 4, 5, 3
    y = torch.tensor([0, 1, 2, 0, 1])
    base = torch.zeros(k, batch, classes)
    base[:, torch.arange(batch), y] = 10.0  # beta = 16: the true class takes all the tempered mass
    base += 0.01 * torch.randn(k, batch, classes, generator=gen())
    logits = base.clone().requires_grad_(True)
    total, ce, robust = macer_loss(logits, y, sigma=0.5, lam=12.0, gamma=8.0, beta=16.0)
    assert robust.item() == 0.0
    (g_total,) = torch.autograd.grad(total, logits)
    logits2 = base.clone().requires_grad_(True)
    _, ce2, _ = macer_loss(logits2, y, sigma=0.5, lam=12.0, gamma=8.0, beta=16.0)
    (g_ce,) = torch.autograd.grad(ce2, logits2)
    assert torch.equal(g_total, g_ce)
    # the largest margin the clamp allows exceeds the default gamma
    assert 2 * norm.isf(PROB_EPS) > 8.0


def test_macer_hinge_is_positive_for_small_margins_and_matches_the_formula():
    k, classes, sigma, lam, gamma, beta = 3, 3, 0.5, 12.0, 8.0, 16.0
    y = torch.tensor([0, 1, 2])
    logits = 0.01 * torch.randn(k, 3, classes, generator=gen(1))
    logits[:, 0, 0] += 0.1  # correct, small margin
    logits[:, 1, 1] += 0.2  # correct, small margin
    logits[:, 2, 0] += 0.3  # misclassified: no hinge
    logits.requires_grad_(True)
    total, ce, robust = macer_loss(logits, y, sigma, lam, gamma, beta)
    q = torch.softmax(beta * logits.detach().double(), -1).mean(0)
    expected = 0.0
    for i in range(3):
        order = q[i].argsort(descending=True)
        if order[0] == y[i]:
            margin = norm.ppf(q[i, order[0]].item()) - norm.ppf(q[i, order[1]].item())
            expected += max(0.0, gamma - margin)
    expected *= sigma / 2 / 3
    assert robust.item() > 0
    assert robust.item() == pytest.approx(expected, rel=1e-4)
    p = torch.softmax(logits.detach().double(), -1).mean(0)
    assert ce.item() == pytest.approx(-p[torch.arange(3), y].log().mean().item(), rel=1e-5)
    assert total.item() == pytest.approx(ce.item() + lam * robust.item(), rel=1e-6)
    # descending the hinge widens the margin: the true-class logit of a hinged example goes up
    (grad,) = torch.autograd.grad(robust, logits)
    assert grad[:, 0, 0].sum() < 0 and grad[:, 1, 1].sum() < 0
    assert torch.all(grad[:, 2] == 0)  # the misclassified example gets no robustness gradient


# --- SmoothAdv ---------------------------------------------------------------------------------------------------


def test_smoothadv_attack_increases_the_smoothed_loss_and_stays_in_the_eps_ball(teacher):
    x, y = toy(16, seed=3)
    objective = SmoothAdv(sigma=0.25, m=4, steps=5, eps=0.5)
    noise = draw_noise(x, 4, 0.25, gen(2))
    x_adv = objective.attack(teacher, x, y, noise, gen(3))
    dist = (x_adv - x).flatten(1).norm(dim=1)
    assert torch.all(dist <= 0.5 + 1e-5)
    assert torch.all((x_adv >= 0) & (x_adv <= 1))  # x' is clamped to [0, 1]; the noise never is
    with torch.no_grad():
        before, after = smoothed_nll(teacher, x, y, noise), smoothed_nll(teacher, x_adv, y, noise)
    assert torch.all(after >= before - 1e-6)
    assert after.mean() > before.mean() + 0.1
    assert teacher.training is False  # the attack restores the model's mode


def test_smoothadv_warmup_scales_eps_linearly(teacher):
    objective = SmoothAdv(sigma=0.25, m=2, steps=8, eps=0.8, warmup=4, clamp=False)
    assert objective.current_eps == 0.8  # outside fit: the full radius
    x, y = toy(8, seed=4)
    noise = draw_noise(x, 2, 0.25, gen(5))
    for epoch, expected in [(0, 0.2), (1, 0.4), (2, 0.6), (3, 0.8), (9, 0.8)]:
        objective.start_epoch(epoch, 10)
        assert objective.current_eps == pytest.approx(expected)
        dist = (objective.attack(teacher, x, y, noise, gen(6)) - x).flatten(1).norm(dim=1)
        assert torch.all(dist <= expected + 1e-5)
        assert dist.max() == pytest.approx(expected, rel=1e-3)  # 8 steps of 2 eps / 8 reach the boundary


def test_smoothadv_reuses_one_noise_draw_for_attack_and_update(teacher):
    x, y = toy(8, seed=5)
    objective = SmoothAdv(sigma=0.25, m=3, steps=2, eps=0.5)
    loss, forward, backward = objective(teacher, x, y, gen(11))
    g = gen(11)
    noise = draw_noise(x, 3, 0.25, g)
    x_adv = objective.attack(teacher, x, y, noise, g)
    expected = torch.nn.functional.cross_entropy(noisy_logits(teacher, x_adv, noise).flatten(0, 1), y.repeat(3))
    assert torch.equal(loss, expected)
    assert forward == backward == 3 * (2 + 1) * 8


def test_smoothadv_attacks_the_smoothed_classifier_not_the_mean_per_copy_cross_entropy():
    """Salman et al. 2019: the attack ascends ``-log (1/m) sum_i softmax(W(x' + d_i))_y``, whose gradient in x' is
    ``W^T sum_i w_i (p_i - e_y)`` with ``w_i = p_iy / sum_j p_jy`` (copies weighted by their probability of y); the mean
    per-copy cross-entropy weights every copy 1/m.  One step of 2 eps, projected onto the eps-ball, lands at
    ``x + eps g / ||g||``: the direction is the smoothed loss's gradient, computed here in closed form."""
    eps, model = 0.05, linear(W3)
    objective = SmoothAdv(sigma=0.5, m=2, steps=1, eps=eps, clamp=False)
    moved = (objective.attack(model, X3, Y3, NOISE3, gen()) - X3).numpy()
    for b in range(len(X3)):
        y = int(Y3[b])
        p = softmax((X3[b].numpy() + NOISE3[:, b].numpy()) @ W3.T, axis=1)  # [m, C]
        off = p - np.eye(3)[y]
        smoothed = W3.T @ ((p[:, y] / p[:, y].sum()) @ off)
        per_copy = W3.T @ off.mean(axis=0)
        cosine = smoothed @ per_copy / np.linalg.norm(smoothed) / np.linalg.norm(per_copy)
        assert cosine < 0.9  # the two objectives point apart here: the test tells them apart
        np.testing.assert_allclose(moved[b], eps * smoothed / np.linalg.norm(smoothed), rtol=1e-6, atol=1e-9)


# --- consistency -------------------------------------------------------------------------------------------------


def test_consistency_kl_is_zero_when_all_copies_agree_and_positive_otherwise(teacher):
    x, y = toy(16, seed=6)
    same = noisy_logits(teacher, x, draw_noise(x, 3, 0.0, gen()))  # sigma = 0: identical copies
    total, ce, kl, entropy = consistency_loss(same, y, lam=20.0, eta=0.5)
    assert abs(kl.item()) < 1e-6
    grads = torch.autograd.grad(kl, list(teacher.parameters()))
    assert max(g.abs().max().item() for g in grads) < 1e-5
    assert total.item() == pytest.approx(ce.item() + 20.0 * kl.item() + 0.5 * entropy.item(), rel=1e-6)
    different = noisy_logits(teacher, x, draw_noise(x, 3, 0.5, gen()))
    _, _, kl, entropy = consistency_loss(different, y, lam=20.0, eta=0.5)
    assert kl.item() > 1e-4
    # the definition: mean over copies of KL(p_mean || p_i), entropy of p_mean
    p = torch.softmax(different.detach().double(), -1)
    p_mean = p.mean(0)
    manual_kl = (p_mean * (p_mean.log() - p.log())).sum(-1).mean()
    assert kl.item() == pytest.approx(manual_kl.item(), rel=1e-4)
    assert entropy.item() == pytest.approx(-(p_mean * p_mean.log()).sum(-1).mean().item(), rel=1e-5)


def consistency_gradient(z: np.ndarray, y: int, lam: float, eta: float) -> np.ndarray:
    """d/dz of ``(1/m) sum_i [CE(z_i, y) + lam KL(pbar || p_i)] + eta H(pbar)`` for one example's logits ``z [m, C]``,
    ``pbar = (1/m) sum_i softmax(z_i)`` (gradients through pbar too), in closed form:

    * CE: ``(p_j - e_y) / m``;
    * KL = ``-H(pbar) - sum_c pbar_c Lbar_c``, ``Lbar = (1/m) sum_i log p_i``: ``(1/m) [p_jk (log pbar_k - <p_j, log
      pbar>) - p_jk (Lbar_k - <p_j, Lbar>) - (pbar_k - p_jk)]``;
    * H(pbar): ``-(1/m) p_jk (log pbar_k - <p_j, log pbar>)``.
    """
    m = z.shape[0]
    p, log_p = softmax(z, axis=1), log_softmax(z, axis=1)
    pbar = p.mean(axis=0)
    log_pbar, lbar = np.log(pbar), log_p.mean(axis=0)
    through_entropy = p * (log_pbar - (p * log_pbar).sum(axis=1, keepdims=True)) / m
    ce = (p - np.eye(z.shape[1])[y]) / m
    kl = through_entropy - p * (lbar - (p * lbar).sum(axis=1, keepdims=True)) / m - (pbar - p) / m
    return ce + lam * kl - eta * through_entropy


def test_consistency_gradient_flows_through_the_mean_prediction():
    """Jeong & Shin 2020 (and their code) do not detach ``pbar``: the gradient of the whole loss matches the closed form
    with pbar's own terms; with ``pbar`` detached the KL gradient would keep only ``-(pbar - p_j) / m`` and the entropy
    none, which differs here by far more than the tolerance."""
    lam, eta = 20.0, 0.5
    logits = (torch.tensor([[0.2, -0.4, 1.0], [1.5, 0.1, -0.3], [-0.7, 0.9, 0.0]], dtype=torch.float64)
              .view(3, 1, 3).repeat(1, 2, 1))
    logits[:, 1] = logits[:, 1].flip(0) * 2.0  # a second example, other copies
    y = torch.tensor([2, 0])
    z = logits.clone().requires_grad_(True)
    total, _, _, _ = consistency_loss(z, y, lam, eta)
    (grad,) = torch.autograd.grad(total, z)
    for b in range(2):
        expected = consistency_gradient(logits[:, b].numpy(), int(y[b]), lam, eta) / 2  # the batch mean
        np.testing.assert_allclose(grad[:, b].numpy(), expected, rtol=1e-9, atol=1e-12)
        p = softmax(logits[:, b].numpy(), axis=1)
        detached = (p - np.eye(3)[int(y[b])]) / 3 / 2 - lam * (p.mean(axis=0) - p) / 3 / 2
        assert np.abs(detached - expected).max() > 0.01  # 10^7 times the tolerance above


# --- denoiser stability ---------------------------------------------------------------------------------------


class Scale(torch.nn.Module):
    """A one-parameter "denoiser" ``D(z) = a z`` (a = 1: the identity)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, z):
        return self.a * z


def test_denoiser_stability_targets_the_classifiers_clean_prediction():
    """Salman et al. 2020: ``L = (1/B) sum_b CE(f(D(x_b + e_b)), argmax f(x_b))`` -- not the label, not f's prediction
    on the noisy or denoised input.  With D the identity and a linear f the value is computed here from the same
    noise draws; the inputs are placed so that every wrong target gives another value.  The classifier gets no
    gradient; the denoiser's is ``dL/da = (1/B) sum_b (p_b - e_t)^T W (x_b + e_b)`` at a = 1."""
    sigma, classifier, denoiser = 1.0, linear(W3), Scale()
    x = torch.tensor([[0.3, 0.1], [0.1, 0.4], [-0.5, -0.2], [0.2, 0.25]], dtype=torch.float64)
    y = torch.tensor([2, 2, 0, 1])  # labels that are not f's clean predictions
    objective = DenoiserObjective(classifier, sigma, "stability")
    loss, forward, backward = objective(denoiser, x, y, gen(5))
    noisy = (x + sigma * torch.randn(x.shape, generator=gen(5)).double()).numpy()  # drawn in float32
    logits = noisy @ W3.T
    log_p = log_softmax(logits, axis=1)
    rows = np.arange(len(x))
    clean = (x.numpy() @ W3.T).argmax(axis=1)
    expected = -log_p[rows, clean].mean()
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    for wrong in (y.numpy(), logits.argmax(axis=1)):  # the label; f's prediction on the (denoised) noisy input
        assert abs(-log_p[rows, wrong].mean() - expected) > 0.02
    soft = -(softmax(x.numpy() @ W3.T, axis=1) * log_p).sum(axis=1).mean()  # f(x)'s probabilities as soft target
    assert abs(soft - expected) > 0.02
    (grad,) = torch.autograd.grad(loss, denoiser.a)
    off = softmax(logits, axis=1) - np.eye(3)[clean]
    assert grad.item() == pytest.approx(((off @ W3) * noisy).sum(axis=1).mean(), rel=1e-9)
    assert not any(p.requires_grad for p in classifier.parameters())
    assert (forward, backward) == (3 * 4, 2 * 4)


# --- CRT ---------------------------------------------------------------------------------------------------------


def test_crt_loss_is_zero_exactly_when_the_student_is_the_teacher(teacher):
    x, y = toy(16, seed=8)
    objective = build_objective("crt", sigma=0.25, teacher=teacher, m=2)
    student = copy.deepcopy(teacher).requires_grad_(True).train()
    loss, forward, backward = objective(student, x, y, gen(9))
    assert loss.item() == 0.0
    grads = torch.autograd.grad(loss, list(student.parameters()))
    assert all(torch.isfinite(g).all() and g.abs().max() == 0 for g in grads)
    assert (forward, backward) == (2 * 2 * 16, 2 * 16)
    other = mlp(seed=1)
    loss_other, _, _ = objective(other, x, y, gen(9))
    assert loss_other.item() > 0.1
    # labels play no part
    assert objective(other, x, 1 - y, gen(9))[0].item() == loss_other.item()
    # the l2 distance (not squared) of the logits
    a, b = torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.zeros(2, 2)
    assert crt_loss(a, b).item() == pytest.approx(2.5)


def test_crt_teacher_from_a_checkpoint_is_frozen_and_recorded(teacher, tmp_path):
    from rsscale.models import save_checkpoint

    path = tmp_path / "teacher.pt"
    save_checkpoint(teacher, path, sigma=0.25, objective={"objective": "gaussian"})
    objective = build_objective("crt", sigma=0.25, teacher=str(path))
    info = objective.describe()
    assert info["teacher"] == str(path) and len(info["teacher_sha256"]) == 64 and info["teacher_sigma"] == 0.25
    assert not any(p.requires_grad for p in objective.teacher.parameters())
    assert info["teacher_objective"] == "gaussian"
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        build_objective("crt", sigma=0.25, teacher=str(tmp_path / "missing.pt"))
    flat = build_model("mlp", dim=16, num_classes=2, hidden=[4])  # takes [16], not [1, 4, 4]
    x, y = toy(4)
    with pytest.raises(ValueError, match=r"teacher takes inputs of shape \(16,\)"):
        build_objective("crt", sigma=0.25, teacher=flat)(mlp(), x, y, gen())
    three = build_model("mlp", dim=16, num_classes=3, hidden=[4], input_shape=list(SHAPE))
    with pytest.raises(ValueError, match="must classify the same classes"):
        build_objective("crt", sigma=0.25, teacher=three)(mlp(), x, y, gen())


# --- the shared loop ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_objective_decreases_its_loss_under_fit(name, teacher):
    x, y = toy()
    model = mlp(seed=3)
    objective = make(name, teacher)
    xb, yb = x[:48], y[:48]

    def loss_now():
        return objective(model, xb, yb, gen(99))[0].item()

    before = loss_now()
    report = fit(model, objective, x, y, epochs=6, batch_size=16, lr=1e-2, generator=gen(1), progress=False)
    after = loss_now()
    assert after < 0.7 * before, (before, after)
    assert math.isfinite(report.final_loss) and report.steps == 6 * 6


class Counting(torch.nn.Module):
    """Counts the rows of every forward pass, and of every backward pass through the output."""

    def __init__(self, net):
        super().__init__()
        self.net, self.forward_rows, self.backward_rows = net, 0, 0

    def forward(self, x):
        out = self.net(x)
        self.forward_rows += out.shape[0]
        if out.requires_grad:
            out.register_hook(self._count_backward)
        return out

    def _count_backward(self, grad):
        self.backward_rows += grad.shape[0]


@pytest.mark.parametrize("name, params, per_example", [
    ("gaussian", {}, (1, 1)),
    ("smoothadv", {"m": 3, "steps": 2, "eps": 0.5, "warmup": 3}, (9, 9)),
    ("smoothadv", {"m": 3, "steps": 2, "eps": 0.0}, (3, 3)),
    ("macer", {"k": 5}, (5, 5)),
    ("consistency", {"m": 3}, (3, 3)),
    ("crt", {"m": 2}, (4, 2)),
])
def test_passes_accounting_matches_the_settings(name, params, per_example, teacher):
    x, y = toy(40)
    model = Counting(mlp(seed=2))
    counted_teacher = Counting(copy.deepcopy(teacher))
    extra = {"teacher": counted_teacher} if name == "crt" else {}
    objective = build_objective(name, sigma=0.25, **params, **extra)
    report = fit(model, objective, x, y, epochs=2, batch_size=16, generator=gen(), progress=False)
    forward, backward = per_example
    assert report.examples == 80
    assert (report.forward_passes, report.backward_passes) == (forward * 80, backward * 80)
    assert (report.forward_per_example, report.backward_per_example) == (forward, backward)
    teacher_rows = counted_teacher.forward_rows if name == "crt" else 0
    assert model.forward_rows + teacher_rows == report.forward_passes
    assert model.backward_rows == report.backward_passes
    assert counted_teacher.backward_rows == 0
    described = objective.describe()["passes_per_example"]
    assert (described["forward"], described["backward"]) == per_example
    assert report.seconds > 0 and report.seconds_per_epoch == pytest.approx(report.seconds / 2)


def test_fit_accepts_two_tuple_objectives_as_one_backward_per_forward():
    x, y = toy(32)

    def plain(model, xb, yb, generator):
        return torch.nn.functional.cross_entropy(model(xb), yb), xb.shape[0]

    report = fit(mlp(), plain, x, y, epochs=1, batch_size=16, generator=gen(), progress=False)
    assert (report.forward_passes, report.backward_passes, report.examples) == (32, 32, 32)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_weights(name, teacher):
    x, y = toy(32)
    states = []
    for _ in range(2):
        model = mlp(seed=5)
        fit(model, make(name, teacher), x, y, epochs=2, batch_size=16, generator=gen(4), progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


# --- the CLI -----------------------------------------------------------------------------------------------------

TINY = '{"width": 4, "hidden": 8}'


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("objectives")
    assert main(["data", "--dataset", "digits", "--params", '{"resolution": 8}', "--out", str(root / "d.pt")]) == 0
    return root


def train(root, out, *extra):
    return main(["train", "--data", str(root / "d.pt"), "--sigma", "0.25", "--epochs", "1", "--arch-params", TINY,
                 "--out", str(out), "--batch-size", "128", "--quiet", "--device", "cpu", "--collapse", "finding",
                 *extra])


@pytest.mark.parametrize("name, params, per_example", [
    ("gaussian", "{}", 1),
    ("smoothadv", '{"m": 2, "steps": 2}', 6),
    ("macer", '{"k": 8}', 8),
    ("consistency", '{"m": 2, "lam": 10}', 2),
    ("crt", "TEACHER", 2),
])
def test_cli_trains_each_objective_end_to_end(digits, name, params, per_example):
    if name == "crt":  # the teacher: the Gaussian-trained model of the first case (trained here if missing)
        teacher = digits / "gaussian.pt"
        if not teacher.exists():
            assert train(digits, teacher) == 0
        params = json.dumps({"teacher": str(teacher)})
    out = digits / f"{name}.pt"
    assert train(digits, out, "--objective", name, "--objective-params", params) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["objective"]["objective"] == name
    training = sidecar["training"]
    assert training["examples"] == 1295 and training["steps"] == 11  # 142 of the 1437 held out
    assert training["forward_passes"] == per_example * 1295
    assert training["forward_per_example"] == per_example
    assert training["seconds"] > 0
    assert sidecar["parameters"]["objective_params"] == params
    if name == "macer":
        assert sidecar["objective"]["k"] == 8 and sidecar["objective"]["lam"] == 12.0
    if name == "crt":
        assert training["backward_passes"] == 1295 and len(sidecar["objective"]["teacher_sha256"]) == 64


def test_cli_refuses_unknown_objective_and_parameters(digits, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert train(digits, out, "--objective", "nope") == 2
    assert "unknown training objective 'nope'" in capsys.readouterr().err
    assert train(digits, out, "--objective", "macer", "--objective-params", '{"kk": 8}') == 2
    assert "bad parameters for training objective 'macer'" in capsys.readouterr().err
    assert train(digits, out, "--objective", "macer", "--objective-params", "[8]") == 2
    assert "expected a JSON object" in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".json").exists()
