"""One token bucket for every rate limit (alert channels, HTTP platforms, HJ 212 clients).

``rate`` tokens a second accrue up to ``burst``; taking more than there are is
allowed and leaves a debt, and :meth:`TokenBucket.take` says how long until it
is paid. Time comes from the caller (an event loop's clock, a test's clock).
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0:
            raise ValueError("a token bucket needs a positive rate")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens at ``now``; the seconds until the balance is back to zero
        (0.0: no wait)."""
        self.refill(now)
        self.tokens -= n
        if self.tokens >= 0:
            return 0.0
        # Measured from the last refill, which may lie after ``now`` (a take
        # scheduled for later, e.g. after a platform's Retry-After pause).
        return self.updated - now - self.tokens / self.rate
