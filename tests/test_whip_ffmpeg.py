"""A real third-party WHIP client: FFmpeg's own ``whip`` muxer (PyAV 18.1's bundled FFmpeg 8.1)
publishes H.264 + Opus to ``POST /whip``, and an aiortc viewer decodes it.

FFmpeg 8.1's GnuTLS build makes its self-signed DTLS certificate on P-224; OpenSSL (inside
``cryptography``, used by aiortc) refuses that peer key in DTLS 1.2 with a fatal
``illegal_parameter`` alert ("wrong curve"), and OpenSSL 4.0 (``cryptography`` >= 47) has no P-224
TLS group to configure back. So publishing with FFmpeg's own certificate is an expected failure,
strict: it turns into a failure the day it starts working. With a P-256 certificate handed to the
muxer (``cert_file``/``key_file``, the workaround in docs/whip-ffmpeg.md) it works end to end.

The publisher runs in a child process, not in a thread: PyAV calls ``avformat_write_header`` (where
the muxer POSTs the offer and runs ICE and DTLS) and ``av_write_trailer`` (the DELETE) while
holding the GIL, so in a thread it would block the event loop of the server it talks to.
"""

from __future__ import annotations

import asyncio
import datetime
import fractions
import math
import struct
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import rtcdtlstransport
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from tests.helpers import eventually
from tests.nodes import Node, serve, start_viewer

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FPS = 320, 240, 25
SECONDS = 4.0
ILLEGAL_PARAMETER = 47  # TLS alert description

pytestmark = [
    pytest.mark.skipif(
        "whip" not in av.formats_available, reason="this PyAV's FFmpeg has no whip muxer"
    ),
    pytest.mark.usefixtures("loopback_ice"),
]


@dataclass
class DtlsObserver:
    """What aiortc's DTLS saw: each alert sent or received, with the peer key's curve."""

    alerts: list[tuple[str, int, str | None]] = field(default_factory=list)

    def refused_p224(self) -> bool:
        return ("sent", ILLEGAL_PARAMETER, "secp224r1") in self.alerts


@pytest.fixture
def dtls(monkeypatch: pytest.MonkeyPatch) -> DtlsObserver:
    """Record DTLS alerts through pyOpenSSL's info callback on every context aiortc makes."""
    observer = DtlsObserver()
    original = rtcdtlstransport.RTCCertificate._create_ssl_context

    def create(self: rtcdtlstransport.RTCCertificate, srtp_profiles: list[Any]) -> SSL.Context:
        context = original(self, srtp_profiles)

        def info(connection: SSL.Connection, where: int, value: int) -> None:
            if where & SSL.SSL_CB_ALERT:
                peer = connection.get_peer_certificate(as_cryptography=True)
                key = peer.public_key() if peer is not None else None
                curve = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else None
                kind = "sent" if where & SSL.SSL_CB_WRITE else "received"
                observer.alerts.append((kind, value & 0xFF, curve))

        context.set_info_callback(info)
        return context

    monkeypatch.setattr(rtcdtlstransport.RTCCertificate, "_create_ssl_context", create)
    return observer


class RecordingNode(Node):
    """The node, noting every WHIP offer and the publication made of it."""

    def __init__(self, node: Node) -> None:
        super().__init__(node.server, node.url)
        self.offers: list[str] = []
        self.publications: list[Any] = []

    def publisher_state(self) -> str | None:
        """The connection state of the latest publisher's peer on the server."""
        return self.publications[-1].pc.connectionState if self.publications else None


@pytest.fixture
async def node(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RecordingNode]:
    async with serve() as running:
        result = RecordingNode(running)
        publish = result.stage.publish

        async def recording_publish(show_id: str, offer_sdp: str, *args: Any, **kwargs: Any) -> Any:
            result.offers.append(offer_sdp)
            publication = await publish(show_id, offer_sdp, *args, **kwargs)
            result.publications.append(publication)
            return publication

        monkeypatch.setattr(result.stage, "publish", recording_publish)
        yield result


def p256_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate and key (PEM) for the muxer's cert_file/key_file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ffmpeg-whip")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "whip-cert.pem", directory / "whip-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class DtlsRefused(Exception):
    """FFmpeg's publish failed in DTLS because aiortc refused its P-224 certificate."""


@dataclass
class Publisher:
    process: asyncio.subprocess.Process

    async def finish(self, timeout: float) -> tuple[int, str]:
        try:
            _, stderr = await asyncio.wait_for(self.process.communicate(), timeout)
        except TimeoutError:
            self.process.kill()
            _, stderr = await self.process.communicate()
        assert self.process.returncode is not None
        return self.process.returncode, stderr.decode(errors="replace")


async def start_publisher(url: str, stream_key: str, *cert_and_key: Path) -> Publisher:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.test_whip_ffmpeg",
        url,
        stream_key,
        *map(str, cert_and_key),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return Publisher(process)


async def publish_and_watch(node: RecordingNode, dtls: DtlsObserver, *cert_and_key: Path) -> None:
    show = await node.create_show("FFmpeg-konsertti")
    publisher = await start_publisher(f"{node.url}/whip", show["stream_key"], *cert_and_key)
    viewer = None
    try:
        await eventually(
            lambda: (
                node.publisher_state() in ("connected", "failed", "closed")
                or publisher.process.returncode is not None
            ),
            15,
        )
        # ICE on loopback only: our answer offers 127.0.0.1 alone, FFmpeg's offer no other address
        assert len(node.publications) == 1
        for sdp in (*node.offers, node.publications[0].answer_sdp):
            for line in sdp.splitlines():
                if line.startswith("a=candidate:"):
                    assert line.split()[4] == "127.0.0.1", line
        if node.publisher_state() != "connected":
            code, stderr = await publisher.finish(10)
            if code != 0 and "DTLS" in stderr and dtls.refused_p224():
                raise DtlsRefused(f"{dtls.alerts}: {stderr.strip().splitlines()[-1]}")
            raise AssertionError(f"publisher exited with {code}: {stderr}")
        viewer = await asyncio.wait_for(start_viewer(node, show["code"]), 10)
        await eventually(lambda: viewer.video.frames >= 10 and viewer.audio.frames >= 5, 15)
        assert viewer.video.sizes == {(WIDTH, HEIGHT)}
        code, stderr = await publisher.finish(SECONDS + 10)
        assert code == 0, stderr
        assert not any(kind == "sent" and desc != 0 for kind, desc, _ in dtls.alerts)
    finally:
        if publisher.process.returncode is None:
            publisher.process.kill()
            await publisher.process.wait()
        if viewer is not None:
            await viewer.close()
            await viewer.session.close()


async def test_ffmpeg_whip_with_a_p256_certificate_reaches_viewers(
    node: RecordingNode, dtls: DtlsObserver, tmp_path: Path
) -> None:
    cert, key = p256_certificate(tmp_path)
    await publish_and_watch(node, dtls, cert, key)
    # FFmpeg offered (and so used) our P-256 certificate, not one of its own
    digest = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA256())
    assert f"a=fingerprint:sha-256 {digest.hex(':').upper()}" in node.offers[0]


@pytest.mark.xfail(
    strict=True,
    raises=DtlsRefused,
    reason=(
        "FFmpeg 8.1's GnuTLS build signs its DTLS certificate on P-224 (GNUTLS_SEC_PARAM_MEDIUM); "
        "OpenSSL refuses a P-224 peer key in DTLS 1.2 (wrong curve, alert 47) and OpenSSL 4.0 "
        "in cryptography>=47 has no P-224 TLS group to allow it (docs/whip-ffmpeg.md)"
    ),
)
async def test_ffmpeg_whip_with_its_own_certificate_reaches_viewers(
    node: RecordingNode, dtls: DtlsObserver
) -> None:
    await publish_and_watch(node, dtls)


def publish(url: str, stream_key: str, cert_file: str | None, key_file: str | None) -> int:
    """Encode a moving pattern (libx264 baseline, no B-frames, keyframe every second) and a tone
    (Opus) in real time and publish them with FFmpeg's whip muxer; returns the frames sent."""
    options = {"authorization": stream_key, "handshake_timeout": "5000"}
    if cert_file and key_file:
        options |= {"cert_file": cert_file, "key_file": key_file}
    with av.open(url, "w", format="whip", options=options) as output:
        video = output.add_stream(
            "libx264",
            rate=FPS,
            options={
                "profile": "baseline",
                "bf": "0",
                "g": str(FPS),
                "preset": "ultrafast",
                "tune": "zerolatency",
            },
        )
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = output.add_stream("libopus", rate=48000, layout="stereo")
        audio.bit_rate = 64000
        samples = 960  # 20 ms
        tone = b"".join(
            struct.pack("<hh", value, value)
            for value in (int(6000 * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(48000))
        )
        chroma = bytes([128]) * (WIDTH * HEIGHT // 4)
        start, frames, audio_pts = time.monotonic(), 0, 0
        while frames < FPS * SECONDS:
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            frame.planes[0].update(bytes((x + 4 * frames) & 0xFF for x in range(WIDTH)) * HEIGHT)
            frame.planes[1].update(chroma)
            frame.planes[2].update(chroma)
            frame.pts, frame.time_base = frames, fractions.Fraction(1, FPS)
            output.mux(video.encode(frame))
            while audio_pts < (frames + 1) * 48000 // FPS:
                chunk = av.AudioFrame(format="s16", layout="stereo", samples=samples)
                offset = (audio_pts % 48000) * 4
                chunk.planes[0].update(tone[offset : offset + samples * 4])
                chunk.sample_rate, chunk.pts = 48000, audio_pts
                chunk.time_base = fractions.Fraction(1, 48000)
                output.mux(audio.encode(chunk))
                audio_pts += samples
            frames += 1
            time.sleep(max(0.0, start + frames / FPS - time.monotonic()))
        output.mux(video.encode(None))
        output.mux(audio.encode(None))
    return frames


if __name__ == "__main__":
    # The child process of start_publisher: url, stream key, optional cert and key files.
    arguments = sys.argv[1:] + [""] * (4 - len(sys.argv[1:]))
    av.logging.set_level(av.logging.WARNING)  # FFmpeg's own messages go to stderr
    try:
        sent = publish(arguments[0], arguments[1], arguments[2] or None, arguments[3] or None)
    except av.FFmpegError as exc:
        print(f"publish failed: {exc} {getattr(exc, 'log', '')}", file=sys.stderr)
        sys.exit(1)
    print(f"sent {sent} video frames", file=sys.stderr)
