"""Noise distributions: sampling moments, the Gaussian radius, norm conversion."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from rsscale.noise import Gaussian, convert_radius


def test_gaussian_samples_have_sigma_and_follow_the_generator():
    noise = Gaussian(0.5)
    a = noise.sample_(torch.empty(200_000), torch.Generator().manual_seed(3))
    b = noise.sample_(torch.empty(200_000), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs(float(a.mean())) < 0.01 and abs(float(a.std()) - 0.5) < 0.01


def test_gaussian_radius():
    noise = Gaussian(0.25)
    assert noise.radius(0.5) == 0.0 and noise.radius(0.3) == 0.0
    assert math.isclose(noise.radius(0.99), 0.25 * norm.ppf(0.99))
    radii = noise.radii(0.99, dim=3072)
    assert radii["l2"] == noise.radius(0.99)
    assert math.isclose(radii["linf"], radii["l2"] / math.sqrt(3072))
    assert radii["l1"] == radii["l2"]


def test_norm_conversion_is_a_ball_inclusion():
    """Every l_q vector of the converted radius has l_p norm at most the original radius."""
    gen = torch.Generator().manual_seed(0)
    d = 50
    for p_name, p, q_name, q in [("l2", 2, "linf", math.inf), ("l1", 1, "l2", 2), ("l1", 1, "linf", math.inf)]:
        r_q = convert_radius(1.0, p_name, q_name, d)
        v = torch.randn(1000, d, generator=gen)
        v_sign = torch.sign(v)  # extreme points of the l_inf ball, near-extreme for l2
        for cand in (v, v_sign):
            scaled = cand / torch.linalg.vector_norm(cand, ord=q, dim=1, keepdim=True) * r_q
            assert float(torch.linalg.vector_norm(scaled, ord=p, dim=1).max()) <= 1.0 + 1e-5
        # tight: the all-equal-magnitude vector reaches the l_p radius
        corner = torch.ones(d) / torch.linalg.vector_norm(torch.ones(d), ord=q) * r_q
        assert math.isclose(float(torch.linalg.vector_norm(corner, ord=p)), 1.0, rel_tol=1e-5)
    assert convert_radius(0.7, "linf", "l2", d) == 0.7


def test_bad_norm_and_dim():
    with pytest.raises(ValueError, match="unknown norm 'l3'"):
        convert_radius(1.0, "l3", "l2", 4)
    with pytest.raises(ValueError, match="dim must be >= 1"):
        convert_radius(1.0, "l2", "linf", 0)


@pytest.mark.parametrize("family", ["gaussian", "laplace", "uniform"])
def test_families_match_the_requested_standard_deviation(family):
    from rsscale.noise import noise_from_sigma

    z = noise_from_sigma(family, 0.3).sample_(torch.empty(400_000), torch.Generator().manual_seed(1))
    assert torch.isfinite(z).all()
    assert abs(float(z.mean())) < 0.005 and abs(float(z.std()) - 0.3) < 0.005


def test_laplace_and_uniform_radii():
    from rsscale.noise import Laplace, Uniform

    assert math.isclose(Laplace(0.5).radius(0.9), -0.5 * math.log(0.2))
    assert Laplace(0.5).radius(1.0) == math.inf and Laplace(0.5).radius(0.5) == 0.0
    assert math.isclose(Uniform(1.0).radius(0.75), 0.5)
    radii = Uniform(1.0).radii(0.75, dim=100)
    assert radii["l1"] == 0.5 and math.isclose(radii["l2"], 0.05) and math.isclose(radii["linf"], 0.005)
    with pytest.raises(ValueError, match="unknown noise family 'cauchy'"):
        from rsscale.noise import noise_from_sigma

        noise_from_sigma("cauchy", 0.5)


@pytest.mark.parametrize(("dim", "k", "radius_T"), [(10, 3.0, None), (64, 26.0, None), (64, 26.0, 7.0), (5, 0.0, None)])
def test_generalized_gaussian_radial_law_and_moments(dim, k, radius_T):
    """||z||^2 / sigma'^2 follows chi^2_{d - 2k} (truncated at the ball, KS test), the direction is uniform, and
    without a ball E||z||^2 = d sigma^2 (each coordinate has variance sigma^2)."""
    from scipy.stats import chi2, kstest

    from rsscale.noise import GeneralizedGaussian

    sigma, num = 0.5, 40_000
    noise = GeneralizedGaussian(sigma, k, radius_T)
    z = noise.sample_(torch.empty(num, dim, dtype=torch.float64), torch.Generator().manual_seed(dim))
    assert torch.equal(z, noise.sample_(torch.empty(num, dim, dtype=torch.float64), torch.Generator().manual_seed(dim)))
    scale, dof = noise.scale(dim), dim - 2 * k
    assert scale == pytest.approx(sigma * math.sqrt(dim / dof))
    squared = (z**2).sum(dim=1).numpy() / scale**2
    cap = math.inf if radius_T is None else (radius_T / scale) ** 2
    mass = noise.ball_mass(dim)
    assert mass == pytest.approx(chi2.cdf(cap, dof), rel=1e-12)
    assert squared.max() <= cap * (1 + 1e-12)
    assert kstest(squared, lambda t: chi2.cdf(np.minimum(t, cap), dof) / mass).pvalue > 1e-3
    directions = (z / z.norm(dim=1, keepdim=True)).mean(dim=0)
    assert directions.abs().max() < 5 / math.sqrt(num)
    if radius_T is None:
        # Var ||z||^2 = 2 (d - 2k) sigma'^4
        assert abs(squared.mean() * scale**2 / (dim * sigma**2) - 1) < 5 * math.sqrt(2 / dof / num)
        assert float(z.var(dim=0).mean()) == pytest.approx(sigma**2, rel=0.05)


def test_generalized_gaussian_refuses_k_outside_its_range():
    from rsscale.noise import GeneralizedGaussian

    with pytest.raises(ValueError, match=r"k must be a finite number >= 0"):
        GeneralizedGaussian(0.5, -1.0)
    noise = GeneralizedGaussian(0.5, 5.0)
    with pytest.raises(ValueError, match=r"k must lie in \[0, d/2\) = \[0, 5.0\), got k=5.0 for d=10"):
        noise.sample_(torch.empty(3, 10), torch.Generator().manual_seed(0))
    with pytest.raises(NotImplementedError):
        noise.radius(0.9)
