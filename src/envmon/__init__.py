"""envmon — environmental monitoring for the Taiyuan–Xinzhou integrated economic zone."""

__version__ = "0.1.0"
