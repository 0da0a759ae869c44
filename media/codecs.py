"""Codec negotiation: make a viewer's peer connection use the performer's codec."""

from __future__ import annotations

import re
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


def ask_for_opus_dtx(sdp: str, mid: str) -> str:
    """Our answer ``sdp`` with ``usedtx=1`` on the Opus of the media section ``mid``: the browser
    that sends on it then stops sending while its microphone hears silence (RFC 7587, section
    6.1), a comfort-noise packet every 400 ms instead of 50 packets a second."""
    lines = sdp.split("\r\n")
    start = next((i for i, line in enumerate(lines) if line == f"a=mid:{mid}"), None)
    if start is None:
        return sdp
    while start > 0 and not lines[start].startswith("m="):
        start -= 1
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    section = lines[start:end]
    rtpmap = next((m for line in section if (m := _OPUS_RTPMAP.match(line))), None)
    if rtpmap is None:
        return sdp
    payload_type = rtpmap.group(1)
    for index, line in enumerate(section):
        if line.startswith(f"a=fmtp:{payload_type} "):
            if "usedtx=" not in line:
                section[index] = line + ";usedtx=1"
            break
    else:
        at = section.index(rtpmap.group(0)) + 1
        section.insert(at, f"a=fmtp:{payload_type} usedtx=1")
    return "\r\n".join(lines[:start] + section + lines[end:])


_OPUS_RTPMAP = re.compile(r"a=rtpmap:(\d+) opus/48000(?:/2)?$", re.IGNORECASE)
