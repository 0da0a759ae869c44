"""Watch again: a show recorded by its organiser's choice plays back from its file (encoded frames
as they came, pauses cut) with the captions typed during it; a show not recorded leaves nothing
on disk; recordings go when their time is up."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from clients.client import Performer
from rooms.recordings import InvalidCaptions, parse_webvtt, vtt_time, webvtt
from tests.helpers import eventually
from tests.media.helpers import MovingPatternTrack, ToneTrack
from tests.nodes import ORGANISER_KEY, Node, serve, start_performer

pytestmark = pytest.mark.usefixtures("loopback_ice")

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}
PAUSE = 1.5  # seconds the performer is off air in the middle of the show


async def _create(node: Node, **body: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{node.url}/api/shows", json={"title": "Iltakonsertti", **body}, headers=AUTH
        ) as response,
    ):
        return response.status, await response.json()


async def _get(node: Node, path: str, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(node.url + path, headers=headers) as r:
        return r.status, await r.read()


async def _json(node: Node, path: str, **headers: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(node.url + path, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def _files(directory: Path) -> set[str]:
    """Everything under ``directory``."""
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def _cue_starts(text: str) -> list[tuple[float, str]]:
    lines = text.split("\n")
    cues = []
    for index, line in enumerate(lines):
        if "-->" in line:
            h, m, s = line.split(" --> ")[0].split(":")
            cues.append((int(h) * 3600 + int(m) * 60 + float(s), lines[index + 1]))
    return cues


async def _end(performer: Performer, show: dict[str, Any]) -> None:
    await performer.session.request("perform.end", show=show["id"], token=show["performer_token"])


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_a_recorded_show_plays_back_with_its_pause_cut_and_its_captions(
    tmp_path: Path, codec: str
) -> None:
    async with serve(data_dir=str(tmp_path)) as node:
        status, show = await _create(node, record=True)
        assert status == 201 and show["record"] is True
        performer = await start_performer(node, show, codec)
        try:
            recorder = await eventually(lambda: node.recorder(show["id"]), 10)
            await eventually(lambda: recorder.position > 0, 10)
            began = time.monotonic()
            await eventually(lambda: recorder.position >= 1.0, 10)
            first_at = recorder.position
            await performer.session.request("caption.send", text="Hyvää iltaa, ystävät!")
            await eventually(lambda: recorder.position >= 2.0, 10)
            part = recorder.position
            await performer.stop()
            # the pause itself: the show is off air this long (nothing is waited for)
            await asyncio.sleep(PAUSE)
            assert recorder.position == part  # nothing is recorded while off air
            again = Performer(performer.session)
            tracks = [MovingPatternTrack(), ToneTrack()]
            await again.start(show["id"], show["performer_token"], tracks, codec)
            await eventually(lambda: recorder.position >= part + 0.5, 10)
            second_at = recorder.position
            await performer.session.request("caption.send", text="Toinen laulu")
            await eventually(lambda: recorder.position >= second_at + 1.5, 10)
            await _end(again, show)
            wall = time.monotonic() - began
        finally:
            await performer.session.close()

        listed = (await _json(node, "/api/recordings"))["recordings"]
        assert [r["id"] for r in listed] == [show["id"]]
        recording = listed[0]["recording"]
        duration = recording["duration_s"]
        assert second_at + 1.4 <= duration <= wall - PAUSE + 0.2  # live time, not wall time
        ext = "webm" if codec == "video/VP8" else "mp4"
        assert recording["media_url"] == f"/api/shows/{show['id']}/recording/show.{ext}"

        # range requests (seeking in the browser)
        status, head = await _get(node, recording["media_url"], Range="bytes=0-99")
        assert status == 206 and len(head) == 100
        status, data = await _get(node, recording["media_url"])
        assert status == 200
        path = tmp_path / f"played.{ext}"
        path.write_bytes(data)
        with av.open(str(path)) as container:
            times = [f.time for f in container.decode(video=0) if f.time is not None]
        with av.open(str(path)) as container:
            sound = [f.time for f in container.decode(audio=0) if f.time is not None]
        assert len(times) >= 40 and len(sound) >= 100
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) < 0.5  # the pause is cut, not a frozen picture
        assert abs(times[-1] - duration) < 0.5 and abs(sound[-1] - duration) < 0.5

        status, vtt = await _get(node, recording["captions_url"])
        assert status == 200
        cues = _cue_starts(vtt.decode())
        assert [text for _, text in cues] == ["Hyvää iltaa, ystävät!", "Toinen laulu"]
        assert abs(cues[0][0] - first_at) < 2 and abs(cues[1][0] - second_at) < 2
        assert recording["captioned"] is True

        # the organiser's view: the captions' deadline; captions replaced, checked
        mine = (await _json(node, "/api/recordings", **AUTH))["recordings"][0]["recording"]
        assert mine["captions_days_left"] == 14 and mine["captions_edited"] is False
        url = f"{node.url}/api/shows/{show['id']}/captions"
        new = "WEBVTT\n\n00:00:00.500 --> 00:00:02.000\nTervetuloa!\n"
        async with aiohttp.ClientSession() as http:
            headers = {**AUTH, "Content-Type": "text/vtt"}
            async with http.put(url, data=b"not captions", headers=headers) as response:
                assert response.status == 400
                assert (await response.json())["error"]["code"] == "invalid_captions"
            big = b"WEBVTT\n\n" + b"x" * (600 * 1024)
            async with http.put(url, data=big, headers=headers) as response:
                assert response.status == 413
            plain = {**AUTH, "Content-Type": "text/plain"}
            async with http.put(url, data=new.encode(), headers=plain) as response:
                assert response.status == 415
            async with http.put(url, data=new.encode(), headers=headers) as response:
                assert response.status == 200
                body = await response.json()
                assert body["recording"]["cues"] == 1 and body["recording"]["captions_edited"]
            async with http.put(url, data=new.encode(), headers={"Content-Type": "text/vtt"}) as r:
                assert r.status == 401
        assert (await _get(node, recording["captions_url"]))[1].decode() == new


async def test_a_show_not_recorded_writes_nothing(tmp_path: Path) -> None:
    async with serve(data_dir=str(tmp_path)) as node:
        status, show = await _create(node)
        assert status == 201 and show["record"] is False
        performer = await start_performer(node, show, "video/VP8")
        try:
            await eventually(lambda: node.ingested(show["id"]) >= 30, 10)
            await performer.session.request("caption.send", text="Ei tallenneta")
            assert _files(tmp_path) == set()
            await _end(performer, show)
        finally:
            await performer.session.close()
        assert _files(tmp_path) == set()
        assert (await _json(node, "/api/recordings"))["recordings"] == []
        assert (await _get(node, f"/api/recordings/{show['id']}"))[0] == 404


async def test_recording_is_refused_without_a_data_directory() -> None:
    async with serve() as node:
        status, body = await _create(node, record=True)
        assert status == 400 and body["error"]["code"] == "recording_unavailable"
        assert "--data-dir" in body["error"]["message"]
        status, show = await _create(node)
        async with (
            aiohttp.ClientSession() as http,
            http.patch(
                f"{node.url}/api/shows/{show['id']}", json={"record": True}, headers=AUTH
            ) as response,
        ):
            assert response.status == 400
        status, body = await _create(node, record="yes")
        assert status == 400


async def test_recordings_are_deleted_when_their_time_is_up(tmp_path: Path) -> None:
    retention = 3.0  # seconds
    async with serve(data_dir=str(tmp_path), recording_retention_days=retention / 86400) as node:
        _, show = await _create(node, record=True)
        performer = await start_performer(node, show, "video/VP8")
        try:
            recorder = await eventually(lambda: node.recorder(show["id"]), 10)
            await eventually(lambda: recorder.position >= 1.0, 10)
            await _end(performer, show)
        finally:
            await performer.session.close()
        directory = tmp_path / "recordings" / show["id"]
        assert {p.name for p in directory.iterdir()} == {
            "show.webm",
            "captions.vtt",
            "recording.json",
        }
        assert (await _get(node, f"/api/recordings/{show['id']}"))[0] == 200
        await eventually(lambda: not directory.exists(), 10, "the sweep deletes the files")
        assert (await _get(node, f"/api/recordings/{show['id']}"))[0] == 404


def test_webvtt_is_written_and_checked() -> None:
    text = webvtt([(1.0, "Yksi"), (3.0, ""), (4.0, "Kaksi --> kolme"), (4.0, "Kolme")], 20.0)
    parsed, cues = parse_webvtt(text.encode())
    assert cues == 3 and "00:00:01.000 --> 00:00:03.000\nYksi" in parsed
    assert "\nKaksi → kolme\n" in parsed  # a line's own arrow is not taken for times
    assert "00:00:04.000 --> 00:00:12.000\nKolme" in parsed  # at most 8 s with no line after
    assert vtt_time(3725.5) == "01:02:05.500"
    assert parse_webvtt(b"\xef\xbb\xbfWEBVTT\r\n\r\n00:01.000 --> 00:02.000\r\nhei\r\n")[1] == 1
    for bad in (
        b"",
        b"WEBVT",
        b"WEBVTT\n\n00:02.000 --> 00:01.000\nbackwards\n",
        b"WEBVTT\n\n00:05.000 --> 00:06.000\nb\n\n00:01.000 --> 00:02.000\na\n",
        b"WEBVTT\n\nnot a time\nhei\n",
        "WEBVTT\n\n00:01.000 --> 00:02.000\nä".encode("latin-1"),
    ):
        with pytest.raises(InvalidCaptions):
            parse_webvtt(bad)
