"""The one token bucket behind every rate limit (alert channels, HTTP platforms, HJ 212)."""

from __future__ import annotations

import pytest

from envmon.ratelimit import TokenBucket


def test_burst_then_steady_rate() -> None:
    b = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [b.take(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert b.take(1, 0.0) == pytest.approx(0.5)  # then one every 1/rate s
    assert b.take(1, 0.0) == pytest.approx(1.0)
    # 2 s later the debt of 2 is paid and 2 tokens are back.
    assert [b.take(1, 2.0) for _ in range(2)] == [0.0, 0.0]
    assert b.take(1, 2.0) == pytest.approx(0.5)


def test_never_more_than_the_burst_accrues() -> None:
    b = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    b.take(2, 0.0)
    assert b.take(1, 100.0) == 0.0 and b.take(1, 100.0) == 0.0
    assert b.take(1, 100.0) == pytest.approx(1.0)


def test_a_take_scheduled_after_a_pause_spaces_from_the_last_slot() -> None:
    # One request per 10 s; a platform's Retry-After pause puts a request at t=30:
    # the next, asked for at t=5 with no pause, is due at t=40, not t=15.
    b = TokenBucket(rate=0.1, burst=1.0, now=0.0)
    assert b.take(1, 30.0) == 0.0
    assert b.take(1, 5.0) == pytest.approx(35.0)


def test_several_tokens_at_once_and_a_bad_rate() -> None:
    b = TokenBucket(rate=100.0, burst=100.0, now=0.0)
    assert b.take(150, 0.0) == pytest.approx(0.5)  # a connection's burst of frames
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(rate=0.0, burst=1.0, now=0.0)
