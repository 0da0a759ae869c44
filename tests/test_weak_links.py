"""Viewers on weak links: a Python viewer in a network namespace (tests/netns.py) whose link is
limited, lossy or both, watching a show from the node on the host."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from clients.client import Performer
from media.ice import use_host_addresses
from media.seams import nominated_pairs
from tests.helpers import eventually
from tests.netns import IP, Namespace, NamespaceViewer, namespace
from tests.nodes import Node, serve, start_performer


@pytest.fixture
def ns() -> Iterator[Namespace]:
    """A namespace for the viewer; the node offers ICE candidates on loopback (the performer's)
    and on the host's end of the namespace's link (the viewer's) only."""
    with namespace() as made:
        use_host_addresses(["127.0.0.1", made.host_address])
        try:
            yield made
        finally:
            use_host_addresses(None)


@pytest.fixture
async def node(ns: Namespace) -> AsyncIterator[Node]:
    """The node listening on the host's end of the namespace's link."""
    async with serve(host=ns.host_address) as running:
        yield running


@pytest.fixture
async def performer(node: Node) -> AsyncIterator[tuple[dict[str, str], Performer]]:
    """A live show: a moving pattern with a box of noise (every frame several packets) and a
    tone, from the Python performer on the host."""
    show = await node.create_show()
    performing = await start_performer(node, show, "video/VP8")
    try:
        yield show, performing
    finally:
        await performing.stop()
        await performing.session.close()


async def test_a_viewer_in_a_namespace_watches_through_its_link(
    ns: Namespace, node: Node, performer: tuple[dict[str, str], Performer]
) -> None:
    show, _ = performer
    viewer = NamespaceViewer(ns, node.url, show["code"])
    await viewer.start()
    try:
        await eventually(lambda: viewer.report.video >= 20 and viewer.report.audio >= 50, 20)
        (pc,) = node.viewer_peers(show["id"])
        (pair,) = nominated_pairs(pc)
        assert (pair.local.host, pair.remote.host) == (ns.host_address, ns.address)
    finally:
        await viewer.close()


def test_the_namespace_and_its_link_go_even_after_a_failure() -> None:
    made: list[Namespace] = []
    with pytest.raises(RuntimeError), namespace() as ns:
        made.append(ns)
        ns.shape(rate_kbit=100, loss=5)
        raise RuntimeError("the test failed")
    (ns,) = made
    assert (
        ns.name not in subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
    )
    links = subprocess.run([IP, "-o", "link"], capture_output=True, text=True).stdout
    assert ns.host_dev not in links
