"""The certificate record shared by every method family.

One certification of one input gives one :class:`Certificate`; a run writes
it as one CSV row (:func:`rsscale.io.certificate_row`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The class returned by a smoothed classifier that declines to decide.
ABSTAIN = -1


@dataclass
class Certificate:
    """What a certifier says about one input.

    Attributes:
        prediction: the class of the smoothed classifier, or :data:`ABSTAIN`.
        radius: certified l2 radius (a noise certifying another norm reports
            the largest l2 ball inside its ball); 0.0 when abstaining.
        p_lower: the lower confidence bound on p_A the radius came from.
        forward_passes: noisy forward passes of the base model spent.
        seconds: wall-clock of this certification.
        radii: radius per norm, e.g. ``{"l1": .., "l2": .., "linf": ..}``.
        extra: method-specific numbers (written as extra CSV columns).
    """

    prediction: int
    radius: float
    p_lower: float
    forward_passes: int
    seconds: float
    radii: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN
