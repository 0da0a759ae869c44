"""Fixtures for the media tests: loopback-only ICE."""

from collections.abc import Iterator

import pytest

from media.ice import use_host_addresses


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Offer only 127.0.0.1, so no test traffic leaves the machine."""
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)
