"""Derived values (hourly/daily air values and AQI, water classes) and target evaluation."""
