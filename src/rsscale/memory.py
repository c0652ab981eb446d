"""Memory-based certification: issued certificates never contradict each other (Alfarra, Bibi, Torr & Ghanem,
"Data Dependent Randomized Smoothing", UAI 2022, Sec. 4; the same fix for ANCER, Eiras et al., TMLR 2022).

Every certified input is remembered as a region ``E(c, theta, s) = {c + delta : ||delta / theta||_2 <= s}`` (a ball:
theta = 1, s its radius; an ANCER ellipsoid: theta its axes, s = Phi^-1(p_A)) with its class.  A new certificate
(c, theta, s, class k) is shrunk to the largest s' <= s whose region is disjoint from every remembered region of
another class; if s' <= 0 it abstains.  Then it is remembered.

Disjointness test: with D = ||c_old - c|| and v = (c_old - c) / D, the regions are disjoint when

    s' ||theta ⊙ v||_2 + s_old ||theta_old ⊙ v||_2 <= D,

since ``s ||theta ⊙ v||`` is the support function of E(0, theta, s) in direction v: the hyperplane orthogonal to v
through the point at distance ``s' ||theta ⊙ v||`` from c separates the two regions.  For two balls this is
``s' + s_old <= D``, which is exact (necessary and sufficient); for ellipsoids it is sufficient only (a sound but
conservative shrink: a separating hyperplane with another normal may exist).

What the fix guarantees: the certificates issued so far are mutually consistent -- no point is certified for two
different classes, so one classifier (answer the class of the remembered region containing the point) agrees with
all of them.  What it does not: that classifier depends on the order of the queries and is only defined on the
certified regions; the certificates still do not say that the input-dependent smoothed classifier (each point
smoothed at the sigma the method picks for it) is constant on a region (Sukenik, Kuvshinov & Guennemann, ICML 2022),
a point certified first can block later, correct certificates, and each certificate still holds only with
probability >= 1 - alpha (the memory stores the statistical errors too).
"""

from __future__ import annotations

import math

import torch

from rsscale.certificate import ABSTAIN, Certificate


class Memory:
    """The remembered regions of one certifier (centers, axes, scales, classes), in issue order."""

    def __init__(self):
        self.centers: list[torch.Tensor] = []
        self.axes: list[torch.Tensor] = []
        self.scales: list[float] = []
        self.classes: list[int] = []

    def __len__(self) -> int:
        return len(self.classes)

    def largest_scale(self, center: torch.Tensor, axes: torch.Tensor, cls: int) -> float:
        """The largest s' with E(center, axes, s') disjoint from every remembered region of another class (module
        docstring); ``inf`` when there is none, negative when ``center`` lies in one (or on its center)."""
        others = [i for i, c in enumerate(self.classes) if c != cls]
        if not others:
            return math.inf
        gap = torch.stack([self.centers[i] for i in others]) - center
        dist = gap.norm(dim=1)
        v = gap / dist.clamp_min(1e-300)[:, None]
        old = torch.tensor([self.scales[i] for i in others], dtype=torch.float64)
        old_reach = old * (torch.stack([self.axes[i] for i in others]) * v).norm(dim=1)
        new_reach = (axes * v).norm(dim=1)
        bound = torch.where(dist > 0, (dist - old_reach) / new_reach.clamp_min(1e-300), -math.inf)
        return float(bound.min())

    def add(self, center: torch.Tensor, axes: torch.Tensor, scale: float, cls: int) -> None:
        self.centers.append(center)
        self.axes.append(axes)
        self.scales.append(float(scale))
        self.classes.append(int(cls))

    def apply(self, xs: torch.Tensor, certs: list[Certificate], axes: torch.Tensor | None = None,
              scale_key: str | None = None) -> list[Certificate]:
        """Shrink the certificates of ``xs`` in order against the memory, remembering each certified one.

        Balls (``axes=None``): the scale is ``cert.radius``.  Ellipsoids: ``axes`` ``[inputs, *shape]`` and the scale
        ``cert.extra[scale_key]``.  A shrunk certificate has every radius (and the scale) multiplied by ``s' / s``;
        ``extra["memory_factor"]`` records ``s' / s`` (1 when untouched, 0 when it abstains because of the memory).
        """
        flat = xs.detach().flatten(1).double().cpu()
        ones = torch.ones(flat.shape[1], dtype=torch.float64)
        for i, cert in enumerate(certs):
            cert.extra["memory_factor"] = 1.0
            if cert.prediction == ABSTAIN:
                continue
            a = ones if axes is None else axes[i].detach().flatten().double().cpu()
            scale = cert.radius if axes is None else float(cert.extra[scale_key])
            allowed = self.largest_scale(flat[i], a, cert.prediction)
            if allowed <= 0:
                cert.prediction, cert.radius, cert.extra["memory_factor"] = ABSTAIN, 0.0, 0.0
                cert.radii = {norm: 0.0 for norm in cert.radii}
                if scale_key:
                    cert.extra[scale_key] = 0.0
                continue
            if allowed < scale:
                factor = allowed / scale
                cert.radius *= factor
                cert.radii = {norm: r * factor for norm, r in cert.radii.items()}
                cert.extra["memory_factor"] = factor
                if scale_key:
                    cert.extra[scale_key] = allowed
                scale = allowed
            self.add(flat[i], a, scale, cert.prediction)
        return certs
