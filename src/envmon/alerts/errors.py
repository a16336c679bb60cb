"""Errors of the alert service, grouped by what the caller does about them."""

from __future__ import annotations

from envmon.errors import ConfigError, FatalError, RetriableError


class AlertConfigError(ConfigError):
    """``config/alerts.yaml`` is wrong; the message names every offending rule or entry."""


class DeliveryFailed(RetriableError):
    """A channel could not deliver now (timeout, 5xx, 429, a robot's rate limit): retry."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"channel {channel}: {reason}")
        self.channel = channel
        self.reason = reason


class DeliveryRejected(FatalError):
    """A channel refused the message for good (bad key, 4xx): no retry, a dead letter."""

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"channel {channel}: {reason}")
        self.channel = channel
        self.reason = reason
