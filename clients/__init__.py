"""Clients of Lämpiö Live: the browser pages (``web/``, plain ES modules) and the Python client."""

from pathlib import Path

WEB_ROOT = Path(__file__).parent / "web"
