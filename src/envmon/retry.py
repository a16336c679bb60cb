"""Back-off between retries, one policy for every retrying part (pollers, HTTP sources)."""

from __future__ import annotations

import math
import random


class Backoff:
    """Exponential backoff with "equal jitter": half the step fixed, half random.

    The fixed half keeps retries from hammering a platform that just failed;
    the random half keeps many sources (or workers) from retrying in step.
    A Retry-After from the platform is a floor, never shortened.
    """

    def __init__(self, base_s: float, cap_s: float, rng: random.Random) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng

    def step(self, failures: int) -> float:
        return min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        d = self.step(failures)
        d = d / 2.0 + self.rng.uniform(0.0, d / 2.0)
        if retry_after is not None and math.isfinite(retry_after):
            d = max(d, min(retry_after, 86400.0))
        return d
