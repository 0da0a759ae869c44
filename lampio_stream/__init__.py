"""Lämpiö Live: live shows for seniors, watched together in small foyers."""

__version__ = "0.1.0"
