"""Double sampling randomized smoothing (rsscale.methods.dsrs): the worst-case classifier's masses against Monte
Carlo, its optimality against a linear program on a fine partition, the radius against the Neyman-Pearson radius,
the truncated-Gaussian sampler, and end-to-end soundness on an exact oracle."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.special import gammainc
from scipy.stats import chi, kstest, norm

import rsscale
from oracles import BallClassifier, IntervalClassifier, allowed_rate, violation_rate
from rsscale import ABSTAIN
from rsscale.methods.dsrs import dsrs_bound, dsrs_radius
from rsscale.noise import TruncatedGaussian

SIGMA = 0.5
#: (p_lower, p_upper, q_lower, q_upper, radius): Q bounds above and below the NP half-space's Q mass.
CASES = [(0.7, 0.72, 0.9, 0.92, 0.4), (0.9, 0.91, 0.99, 1.0, 0.8), (0.8, 0.82, 0.5, 0.6, 0.5),
         (0.95, 0.96, 0.999, 1.0, 1.0)]


def in_worst_set(bound, case, z):
    """Membership of the rows of z in ``A = {p(z - r e_1) < lam1 p(z) + lam2 q(z)}`` (divided by p(z))."""
    r, s = case.radius, bound.sigma
    lhs = (2 * r * z[:, 0] - r**2) / (2 * s**2)  # log p(z - r e_1) / p(z)
    lam1 = case.sign1 * math.exp(case.log_lam1) if case.sign1 else 0.0
    if bound.secondary == "truncated":
        log_q_over_p = np.where(np.linalg.norm(z, axis=1) <= bound.param, -math.log(bound.ball_mass), -np.inf)
    else:
        log_q_over_p = bound.log_ratio - bound.kappa * (z**2).sum(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        second = case.sign2 * np.exp(case.log_lam2 + log_q_over_p) if case.sign2 else 0.0
        return np.exp(lhs) < np.nan_to_num(lam1 + second, nan=0.0, posinf=np.inf)


def primary_and_secondary_samples(bound, num, rng):
    z = rng.standard_normal((num, bound.dim)) * bound.sigma
    if bound.secondary == "truncated":
        return z, z[np.linalg.norm(z, axis=1) <= bound.param]
    return z, rng.standard_normal((num, bound.dim)) * bound.param


@pytest.mark.parametrize("secondary", ["truncated", "scaled"])
@pytest.mark.parametrize("dim", [5, 30])
def test_worst_case_masses_match_monte_carlo(secondary, dim):
    """P(A), Q(A) and P(A - r e_1) from the 1-D quadratures agree with 200,000 samples (within 5 standard errors)."""
    bound = dsrs_bound(SIGMA, dim, secondary)
    rng = np.random.default_rng(dim)
    tested = 0
    for p_lower, p_upper, q_lower, q_upper, r in CASES:
        if not bound.consistent(p_lower, p_upper, q_lower, q_upper):
            continue
        case = bound.worst_case(p_lower, p_upper, q_lower, q_upper, r)
        assert case.solved
        if not math.isfinite(case.log_lam1) and case.sign1:  # a degenerate multiplier: the LP test covers it
            continue
        zp, zq = primary_and_secondary_samples(bound, 200_000, rng)
        shifted = zp + np.eye(dim)[0] * r
        for exact, samples in ((case.p_mass, zp), (case.q_mass, zq), (case.shifted_mass, shifted)):
            estimate = in_worst_set(bound, case, samples).mean()
            assert abs(estimate - exact) < 5 * math.sqrt(max(exact * (1 - exact), 1e-4) / len(samples))
        assert p_lower - 1e-9 <= case.p_mass <= p_upper + 1e-9 and q_lower - 1e-9 <= case.q_mass <= q_upper + 1e-9
        tested += 1
    assert tested >= 2


def partition_lp_value(bound, p_lower, p_upper, q_lower, q_upper, r, bins_z=600, bins_rho=150):
    """min P(A - r e_1) over unions of (fractions of) cells of a fine (z_1, ||z_{2..d}||^2) partition, subject to
    the two interval constraints: an upper bound on the true minimum, and close to it for fine cells."""
    s, d = bound.sigma, bound.dim
    z_edges = np.linspace(-9 * s, r + 9 * s, bins_z + 1)
    z_mid = (z_edges[:-1] + z_edges[1:]) / 2
    rho_edges = np.concatenate([[0.0], np.quantile(np.random.default_rng(0).chisquare(d - 1, 400_000),
                                                   np.linspace(0, 1, bins_rho + 1)[1:-1]), [np.inf]])

    def cells(center, scale, cap=None):
        along = np.diff(norm.cdf(z_edges, loc=center, scale=scale))
        upper = np.broadcast_to(rho_edges[1:] * s**2, (bins_z, bins_rho))
        if cap is not None:  # the part of each cell inside the ball z_1^2 + rho^2 <= cap^2
            upper = np.minimum(upper, np.maximum(cap**2 - z_mid**2, 0)[:, None])
        lower = np.minimum(rho_edges[:-1] * s**2, upper)
        across = gammainc((d - 1) / 2, upper / (2 * scale**2)) - gammainc((d - 1) / 2, lower / (2 * scale**2))
        return (along[:, None] * across).ravel()

    p_cells, shifted_cells = cells(0.0, s), cells(r, s)
    if bound.secondary == "truncated":
        q_cells = cells(0.0, s, cap=bound.param) / bound.ball_mass
    else:
        q_cells = cells(0.0, bound.param)
    result = linprog(shifted_cells, A_ub=np.stack([p_cells, -p_cells, q_cells, -q_cells]),
                     b_ub=[p_upper, -p_lower, q_upper, -q_lower], bounds=(0, 1), method="highs")
    assert result.status == 0
    return result.fun


@pytest.mark.parametrize("secondary", ["truncated", "scaled"])
@pytest.mark.parametrize("dim", [5, 30])
def test_worst_case_is_the_minimum_over_all_classifiers(secondary, dim):
    """The generalized Neyman-Pearson set attains (to the partition's resolution) the minimum of the smoothed
    probability at r e_1 over every classifier meeting both intervals, which a linear program over a fine partition
    of the (z_1, rho) plane computes independently; a value above it would overstate the radius."""
    bound = dsrs_bound(SIGMA, dim, secondary)
    gained = 0
    for p_lower, p_upper, q_lower, q_upper, r in CASES:
        if not bound.consistent(p_lower, p_upper, q_lower, q_upper):
            continue
        value = bound.worst_case(p_lower, p_upper, q_lower, q_upper, r).shifted_mass
        lp = partition_lp_value(bound, p_lower, p_upper, q_lower, q_upper, r)
        assert lp - 0.01 <= value <= lp + 2e-3, (p_lower, q_lower, r)
        gained += value > norm.cdf(norm.ppf(p_lower) - r / SIGMA) + 0.01
    assert gained >= 1  # the cases exercise a binding Q constraint, not only the NP half-space


@pytest.mark.parametrize("secondary", ["truncated", "scaled"])
@pytest.mark.parametrize("dim", [2, 10, 1000, 100_000])
def test_radius_is_never_below_neyman_pearson_and_equals_it_when_q_adds_nothing(secondary, dim):
    bound = dsrs_bound(SIGMA, dim, secondary)
    rng = np.random.default_rng(dim)
    for p_lower in rng.uniform(0.51, 0.999, 6):
        r_np = SIGMA * norm.ppf(p_lower)
        q_np = bound.np_q_mass(r_np)
        assert dsrs_radius(p_lower, min(p_lower + 0.01, 1), max(q_np - 0.01, 0), min(q_np + 0.01, 1), SIGMA, dim,
                           secondary) == pytest.approx(r_np, rel=1e-12)
        for q_lower in np.linspace(0, 1, 5):
            q_upper = min(q_lower + 0.02, 1.0)
            assert dsrs_radius(p_lower, min(p_lower + 0.01, 1), q_lower, q_upper, SIGMA, dim, secondary) >= r_np
    assert dsrs_radius(0.5, 0.6, 0.9, 1.0, SIGMA, dim, secondary) == 0.0


@pytest.mark.parametrize("secondary", ["truncated", "scaled"])
def test_radius_is_the_first_crossing_of_one_half(secondary):
    """S(r) need not fall with r (the scaled Q's upper bound makes the worst set a shell whose shifted mass first
    rises); the radius must still be where S first reaches 1/2: above 1/2 at every grid point below it, and
    reaching 1/2 within two grid steps above it."""
    bound = dsrs_bound(SIGMA, 5, secondary)
    rising = 0
    for p_lower, p_upper, q_lower, q_upper, _ in CASES:
        if not bound.consistent(p_lower, p_upper, q_lower, q_upper):
            continue
        radius = bound.radius(p_lower, p_upper, q_lower, q_upper)
        grid = np.linspace(SIGMA * norm.ppf(p_lower), radius + 0.05, 60)
        values = np.array([bound.worst_case(p_lower, p_upper, q_lower, q_upper, r).shifted_mass for r in grid])
        assert (values[grid <= radius] > 0.5).all()
        assert (values[grid > radius + 2 * (grid[1] - grid[0])] <= 0.5 + 1e-6).all()
        rising += bool((np.diff(values) > 1e-6).any())
    if secondary == "scaled":
        assert rising >= 1  # the non-monotone case is among them


def test_truncated_gaussian_samples_the_conditioned_law():
    """Norms follow sigma chi_d truncated at T (KS test), directions are uniform, nothing falls outside the ball."""
    dim, truncation = 7, 1.2
    noise = TruncatedGaussian(SIGMA, truncation)
    z = noise.sample_(torch.empty(20_000, dim, dtype=torch.float64), torch.Generator().manual_seed(0))
    norms = z.norm(dim=1).numpy()
    assert norms.max() <= truncation * (1 + 1e-12)
    mass = noise.ball_mass(dim)
    assert mass == pytest.approx(chi.cdf(truncation / SIGMA, dim), rel=1e-12)
    assert kstest(norms, lambda t: chi.cdf(np.minimum(t, truncation) / SIGMA, dim) / mass).pvalue > 1e-3
    directions = (z / z.norm(dim=1, keepdim=True)).mean(dim=0)
    assert directions.abs().max() < 5 / math.sqrt(20_000)
    with pytest.raises(NotImplementedError):
        noise.radius(0.9)


def certify_ball_oracle(secondary, trials, n, alpha, seed):
    """DSRS on the ball oracle in d = 10 (class 0 inside ||x|| <= 2.5, g switches at distance s* ~ 2.0)."""
    oracle = BallClassifier(torch.zeros(10), radius=2.5)
    certifier = rsscale.methods.build("dsrs", model=oracle, num_classes=2, sigma=SIGMA, n0=20, n=n, alpha=alpha,
                                      secondary=secondary, batch_size=4096, device="cpu")
    gen = torch.Generator().manual_seed(seed)
    distances = np.random.default_rng(seed).uniform(0, 3.5, trials)
    xs = torch.stack([oracle.input_at(s, gen) for s in distances])
    certs = certifier.certify_many(xs, generator=gen)
    distances = np.array([oracle.distance(x) for x in xs])
    return certs, oracle.smoothed_class(distances, SIGMA), oracle.true_radius(distances, SIGMA)


@pytest.mark.parametrize(("secondary", "trials"), [("truncated", 2000), ("scaled", 250)])
def test_certified_radius_never_exceeds_the_true_radius_beyond_alpha(secondary, trials):
    """On the ball oracle, whose true radius |s* - ||x||| is known in closed form, DSRS's radius exceeds it (or
    certifies the wrong class) at most at the alpha rate; the scaled variant's slower radius search gets fewer
    trials.  Its certificates beat the NP radius from the same P samples on some inputs and never fall below it."""
    alpha = 0.05
    certs, true_classes, true_radii = certify_ball_oracle(secondary, trials, n=300, alpha=alpha, seed=3)
    predictions = [c.prediction for c in certs]
    radii = [c.radius for c in certs]
    assert violation_rate(predictions, radii, true_classes, true_radii) <= allowed_rate(alpha, trials)
    certified = [c for c in certs if c.prediction != ABSTAIN]
    assert len(certified) > trials / 2
    assert all(c.radius >= c.extra["np_radius"] for c in certified)
    assert sum(c.radius > c.extra["np_radius"] * 1.01 for c in certified) >= 0.05 * len(certified)
    # the same numbers with the P point estimate in place of its bound are caught by the check
    naive = [SIGMA * norm.ppf(min(c.extra["count_p"] / 300, 1 - 1e-9)) if c.prediction != ABSTAIN else 0.0
             for c in certs]
    assert violation_rate(predictions, naive, true_classes, true_radii) > allowed_rate(alpha, trials)


def test_half_space_oracle_soundness_and_certificate_fields():
    oracle = IntervalClassifier(torch.ones(16) / 4, [0.0], [0, 1], num_classes=2)
    certifier = rsscale.methods.build("dsrs", model=oracle, num_classes=2, sigma=SIGMA, n0=20, n=300, alpha=0.05,
                                      batch_size=4096, device="cpu")
    gen = torch.Generator().manual_seed(5)
    ts = np.random.default_rng(5).uniform(-1.5, 1.5, 1000)
    xs = torch.stack([oracle.input_at(t, gen) for t in ts])
    certs = certifier.certify_many(xs, generator=gen)
    ts = np.array([oracle.projection(x) for x in xs])
    assert violation_rate([c.prediction for c in certs], [c.radius for c in certs], (ts > 0).astype(int),
                          np.abs(ts)) <= allowed_rate(0.05, 1000)
    cert = certs[0]
    assert cert.forward_passes == 20 + 2 * 300
    assert cert.radii["linf"] == pytest.approx(cert.radius / 4) and cert.radii["l2"] == cert.radius
    assert {"p_upper", "q_lower", "q_upper", "np_radius", "sampling_seconds", "radius_seconds"} <= set(cert.extra)
    assert certifier.settings()["secondary"] == "truncated"


@pytest.mark.parametrize(("params", "message"), [
    ({"secondary": "ball"}, "unknown secondary"),
    ({"secondary": "scaled", "sigma_q": 0.6}, "sigma_q must be smaller"),
    ({"secondary": "scaled", "truncation": 1.0}, "does not apply"),
    ({"truncation": -1.0}, "truncation must be"),
    ({"n0": 200, "n": 100}, "n0"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        rsscale.methods.build("dsrs", model=torch.nn.Identity(), num_classes=2, sigma=SIGMA, **params)
    with pytest.raises(ValueError, match="p_lower must lie"):
        dsrs_radius(1.2, 1.3, 0.5, 0.6, SIGMA, 10)


# ---- the generalized Gaussian primary P_k (k > 0) ------------------------------------------------------------------
@pytest.mark.parametrize(("secondary", "dims", "cases"),
                         [("truncated", (5, 64), CASES[:2]), ("scaled", (20, 64), CASES)])
def test_generalized_bound_at_k0_matches_the_gaussian_implementation(secondary, dims, cases):
    """At k = 0 the polar quadrature of GeneralizedDSRSBound (truncated Q) and ScaledGeneralizedDSRSBound (scaled Q)
    reproduces the independent half-space implementation (DSRSBound, checked against a linear program above), every
    sign pattern of the multipliers among the scaled cases, and the closed-form NP radius sigma Phi^-1(pL)."""
    from rsscale.methods.dsrs import GeneralizedDSRSBound, ScaledGeneralizedDSRSBound

    polar_bound = GeneralizedDSRSBound if secondary == "truncated" else ScaledGeneralizedDSRSBound
    patterns = set()
    for dim in dims:
        gaussian = dsrs_bound(SIGMA, dim, secondary)
        polar = polar_bound(SIGMA, dim, 0.0, gaussian.param)
        for p_lower, p_upper, q_lower, q_upper, r in cases:
            if not gaussian.consistent(p_lower, p_upper, q_lower, q_upper):
                continue
            expected = gaussian.worst_case(p_lower, p_upper, q_lower, q_upper, r)
            assert polar.worst_case(p_lower, p_upper, q_lower, q_upper, r).shifted_mass == pytest.approx(
                expected.shifted_mass, abs=1e-9)
            patterns.add((expected.sign1, expected.sign2))
        assert polar.np_radius(0.9) == pytest.approx(SIGMA * norm.ppf(0.9), abs=1e-8)
        assert polar.np_radius(0.9) <= SIGMA * norm.ppf(0.9)
    assert secondary == "truncated" or patterns == {(1, 1), (1, -1), (-1, 1)}


def generalized_lambda(bound, z, r):
    """Lambda(z) = h(||z - r e_1||) - h(||z||), h(t) = k ln t^2 + t^2 / (2 sigma'^2)."""
    shifted = z.copy()
    shifted[:, 0] -= r
    h = lambda t2: bound.k * np.log(t2) + t2 / (2 * bound.scale**2)  # noqa: E731
    return h((shifted**2).sum(axis=1)) - h((z**2).sum(axis=1))


@pytest.mark.parametrize(("dim", "k"), [(5, 1.0), (20, 8.0)])
def test_generalized_worst_case_masses_match_monte_carlo(dim, k):
    """P(A), Q(A) and P(A - r e_1) of the worst sets (NP and DSRS) agree with 200,000 samples of P_k and Q."""
    from rsscale.noise import GeneralizedGaussian

    bound = dsrs_bound(SIGMA, dim, k=k)
    primary = GeneralizedGaussian(SIGMA, k).sample_(torch.empty(200_000, dim, dtype=torch.float64),
                                                    torch.Generator().manual_seed(dim)).numpy()
    secondary = GeneralizedGaussian(SIGMA, k, bound.param).sample_(torch.empty(200_000, dim, dtype=torch.float64),
                                                                   torch.Generator().manual_seed(dim + 1)).numpy()
    q_np = bound.np_case(0.8, 0.5).q_mass
    for q_lower, r in ((min(q_np + 0.08, 0.99), 0.5), (max(q_np - 0.15, 0.0), 0.7)):
        case = bound.worst_case(0.8, 0.81, q_lower, q_lower + 0.01, r)
        assert case.p_mass == pytest.approx(0.8, abs=1e-9) or case.q_mass == pytest.approx(q_lower, abs=1e-9)

        def member(z, case=case, r=r):
            inside = (z**2).sum(axis=1) <= bound.param**2
            return generalized_lambda(bound, z, r) > np.where(inside, case.c_in, case.c_out)

        shifted = primary.copy()
        shifted[:, 0] += r
        for exact, samples in ((case.p_mass, primary), (case.q_mass, secondary), (case.shifted_mass, shifted)):
            estimate = member(samples).mean()
            assert abs(estimate - exact) < 5 * math.sqrt(max(exact * (1 - exact), 1e-4) / len(samples))


def generalized_samples(scale, dim, k, num, rng):
    """num draws of P_k at scale sigma' = scale: a uniform direction times ``scale sqrt(chi^2_{d - 2k})``."""
    z = rng.standard_normal((num, dim))
    return z / np.linalg.norm(z, axis=1, keepdims=True) * (scale * np.sqrt(rng.chisquare(dim - 2 * k, num)))[:, None]


def test_generalized_scaled_worst_case_masses_match_monte_carlo():
    """For P_k (d = 20, k = 2) and Q = P_k at 0.8 sigma, P(A), Q(A) and P(A - r e_1) of the worst sets
    ``{Lambda(z) > level + o(||z||^2)}`` of every kind (NP, lam1 = 0, both multipliers positive, lam1 < 0 < lam2 and
    lam2 < 0 < lam1) agree with 200,000 draws of P_k and Q (radial law times a uniform direction) within 5 standard
    errors and meet the bounds; the certifier's Q sampler draws the same radial law."""
    dim, k, r = 20, 2.0, 0.5
    bound = dsrs_bound(SIGMA, dim, "scaled", k=k)
    rng = np.random.default_rng(3)
    primary = generalized_samples(bound.scale, dim, k, 200_000, rng)
    secondary = generalized_samples(bound.q_scale, dim, k, 200_000, rng)
    shifted = primary + np.eye(dim)[0] * r
    q_np = bound.np_case(0.8, r).q_mass
    patterns = set()
    for q_lower, q_upper in ((q_np - 0.01, q_np + 0.01), (0.69, 0.70), (0.90, 0.91), (0.982, 0.992), (0.99, 1.0)):
        case = bound.worst_case(0.8, 0.82, q_lower, q_upper, r)
        assert case.solved and 0.8 - 1e-9 <= case.p_mass <= 0.82 + 1e-9
        assert q_lower - 1e-9 <= case.q_mass <= q_upper + 1e-9
        patterns.add((case.sign1, case.sign2))
        for exact, samples in ((case.p_mass, primary), (case.q_mass, secondary), (case.shifted_mass, shifted)):
            threshold = case.level + bound.offset(*case.shape, (samples**2).sum(axis=1))
            estimate = (generalized_lambda(bound, samples, r) > threshold).mean()
            assert abs(estimate - exact) < 5 * math.sqrt(max(exact * (1 - exact), 1e-4) / len(samples))
    assert patterns == {(1, 0), (0, 1), (1, 1), (-1, 1), (1, -1)}
    certifier = rsscale.methods.build("dsrs", model=torch.nn.Identity(), num_classes=2, sigma=SIGMA, k=k,
                                      secondary="scaled")
    draws = certifier.secondary_noise(dim).sample_(torch.empty(20_000, dim, dtype=torch.float64),
                                                   torch.Generator().manual_seed(0))
    assert kstest((draws**2).sum(dim=1).numpy() / bound.q_scale**2, "chi2", args=(dim - 2 * k,)).pvalue > 1e-3


@pytest.mark.parametrize(("dim", "k"), [(20, 2.0), (3072, 1530.0)])
def test_generalized_scaled_radius_is_never_below_neyman_pearson(dim, k):
    """With the scaled Q the DSRS radius is never below the NP radius of the same pL (the walk starts there), equals
    it when the Q interval holds the NP set's Q mass, and exceeds it for some intervals; at d = 20 the shifted mass
    stays above 1/2 on a grid below a radius reached through a shell (lam2 < 0), where S need not fall with r."""
    bound = dsrs_bound(SIGMA, dim, "scaled", k=k)
    gained = 0
    for p_lower in (0.6, 0.8, 0.95):
        r_np = bound.np_radius(p_lower)
        q_np = bound.np_case(p_lower, r_np).q_mass
        q_around = (max(q_np - 0.01, 0.0), min(q_np + 0.01, 1.0))
        assert dsrs_radius(p_lower, p_lower + 0.01, *q_around, SIGMA, dim, "scaled", k=k) == r_np
        for q_lower in (0.3, q_np - 0.05, min(q_np + 0.02, 0.98), 0.99):
            q_upper = min(q_lower + 0.01, 1.0)
            if not bound.consistent(p_lower, p_lower + 0.01, q_lower, q_upper):
                continue
            radius = dsrs_radius(p_lower, p_lower + 0.01, q_lower, q_upper, SIGMA, dim, "scaled", k=k)
            assert radius >= r_np
            gained += radius > r_np * 1.01
    assert gained >= 3
    if dim == 20:
        bounds = (0.8, 0.81, 0.6, 0.61)
        radius = bound.radius(*bounds)
        assert bound.worst_case(*bounds, radius).sign2 == -1
        assert all(bound.worst_case(*bounds, r).shifted_mass > 0.5 for r in np.linspace(0.01, radius, 12))


def test_generalized_np_radius_matches_monte_carlo_and_the_radius_never_falls_below_it():
    """At the NP radius the worst set's shifted mass (checked by Monte Carlo) is 1/2; DSRS never certifies less."""
    from rsscale.methods.dsrs import np_radius
    from rsscale.noise import GeneralizedGaussian

    dim, k = 20, 8.0
    bound = dsrs_bound(SIGMA, dim, k=k)
    radius = np_radius(0.9, SIGMA, dim, k)
    assert radius == pytest.approx(bound.np_radius(0.9), abs=1e-9)  # the same walk, split at T or not
    case = bound.np_case(0.9, radius)
    assert case.shifted_mass == pytest.approx(0.5, abs=1e-6)
    z = GeneralizedGaussian(SIGMA, k).sample_(torch.empty(200_000, dim, dtype=torch.float64),
                                              torch.Generator().manual_seed(7)).numpy()
    z[:, 0] += radius
    assert abs((generalized_lambda(bound, z, radius) > case.c_in).mean() - 0.5) < 5 * math.sqrt(0.25 / len(z))
    rng = np.random.default_rng(1)
    for p_lower in rng.uniform(0.55, 0.99, 3):
        q = bound.np_case(p_lower, 0.5).q_mass
        for q_lower in (0.0, max(q - 0.1, 0.0), min(q + 0.05, 0.99)):
            assert dsrs_radius(p_lower, p_lower + 0.01, q_lower, q_lower + 0.01, SIGMA, dim, k=k) >= \
                bound.np_radius(p_lower)


@pytest.mark.parametrize("secondary", ["truncated", "scaled"])
def test_generalized_half_space_oracle_soundness(secondary):
    """2,000 certifications with P_k (d = 16, k = 5) and either Q of a half-space classifier, whose smoothed class
    flips exactly at the hyperplane for any spherically symmetric noise (true radius |t|): the radius exceeds |t| at
    most at the alpha rate, is never below the NP radius from the same P samples, and exceeds it on some inputs.
    Two positions and n = 50 keep the distinct (count_p, count_q) pairs, hence radius searches, few."""
    dim, k, alpha, trials = 16, 5.0, 0.05, 2000
    oracle = IntervalClassifier(torch.ones(dim) / 4, [0.0], [0, 1], num_classes=2)
    certifier = rsscale.methods.build("dsrs", model=oracle, num_classes=2, sigma=SIGMA, n0=10, n=50, alpha=alpha,
                                      k=k, secondary=secondary, batch_size=4096, device="cpu")
    gen = torch.Generator().manual_seed(11)
    xs = torch.stack([oracle.input_at(t, gen) for t in np.repeat([0.35, 0.7], trials // 2)])
    certs = certifier.certify_many(xs, generator=gen)
    ts = np.array([oracle.projection(x) for x in xs])
    predictions, radii = [c.prediction for c in certs], [c.radius for c in certs]
    assert violation_rate(predictions, radii, (ts > 0).astype(int), np.abs(ts)) <= allowed_rate(alpha, trials)
    certified = [c for c in certs if c.prediction != ABSTAIN]
    assert len(certified) > trials / 2
    assert all(c.radius >= c.extra["np_radius"] > 0 for c in certified)
    assert any(c.radius > c.extra["np_radius"] * 1.01 for c in certified)
    # the point estimate of p in place of its bound is caught
    bound = certifier.bound(dim)
    naive = [bound.np_radius(min(c.extra["count_p"] / 50, 1 - 1e-6)) if c.prediction != ABSTAIN else 0.0
             for c in certs]
    assert violation_rate(predictions, naive, (ts > 0).astype(int), np.abs(ts)) > allowed_rate(alpha, trials)
    assert certifier.settings()["k"] == k and certifier.settings()["secondary"] == secondary


@pytest.mark.parametrize(("params", "message"), [
    ({"k": -1.0}, "k must be a finite number >= 0"),
    ({"k": 2.0, "secondary": "scaled", "sigma_q": 0.6}, "sigma_q must be smaller"),
    ({"k": 2.0, "secondary": "scaled", "truncation": 1.0}, "does not apply"),
])
def test_bad_generalized_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        rsscale.methods.build("dsrs", model=torch.nn.Identity(), num_classes=2, sigma=SIGMA, **params)
    with pytest.raises(ValueError, match=r"0 <= k < \(d - 1\)/2"):
        dsrs_radius(0.9, 0.91, 0.5, 0.6, SIGMA, 10, k=4.5)
