"""Codec negotiation: make a viewer's peer connection use the performer's codec."""

from __future__ import annotations

from collections.abc import Mapping

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecCapability


def codec_capabilities(kind: str, mime_type: str) -> list[RTCRtpCodecCapability]:
    """aiortc's capabilities for one codec (every H.264 profile it knows), then RTX for video."""
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    wanted = [codec for codec in codecs if codec.mimeType.lower() == mime_type.lower()]
    if not wanted:
        raise ValueError(f"aiortc cannot send {mime_type!r} as {kind}")
    # Without RTX a viewer cannot ask for lost packets to be resent on their own SSRC.
    rtx = [codec for codec in codecs if codec.mimeType.lower() == f"{kind}/rtx"]
    return wanted + rtx


def prefer_codec(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Negotiate only this codec on the transceiver.

    aiortc applies preferences when it writes an offer, or inside setRemoteDescription when it
    answers: call this before createOffer, or before setRemoteDescription on an answering peer.
    """
    transceiver.setCodecPreferences(codec_capabilities(transceiver.kind, mime_type))


def prefer_codecs(pc: RTCPeerConnection, codecs: Mapping[str, str]) -> None:
    """Negotiate, per kind ("audio"/"video"), only the given codec on every transceiver of pc."""
    for transceiver in pc.getTransceivers():
        mime_type = codecs.get(transceiver.kind)
        if mime_type is not None:
            prefer_codec(transceiver, mime_type)
