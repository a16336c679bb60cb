"""Validation of incoming readings: what is accepted, and why anything is not."""
