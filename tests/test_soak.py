"""The soak in short (bench/soak.py): 20 viewers come and go for 12 s; once they have all left,
the node holds what it held before they came."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def test_a_coming_and_going_audience_leaves_nothing_behind() -> None:
    """Every way of leaving (watch.leave, closing, a dropped socket, a silent cut and a
    reconnect), one viewer with media: no unexpected error, and no peer connection, WebSocket,
    task or seat on the bus left once everyone has gone (the bus's keys kept by design
    aside). Memory is the long run's to judge (make bench)."""
    command = [
        sys.executable,
        str(SOAK),
        "--viewers=20",
        "--media-viewers=1",
        "--minutes=0.2",
        "--warmup=0",
        "--bus=memory",
        "--ramp=1",
        "--stay=2,6",
        "--pause=0.5,2",
        "--settle=10",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == 0, (result["client_errors"], result["error_samples"])
    assert result["leaks"] == [], result["leaks"]
    assert result["node_exit"] == 0
    assert result["first_frames"] > 0
    assert result["reconnects"] > 0
    assert set(result["exits"]) == {"leave", "close", "drop", "cut"}, result["exits"]
    assert result["end"]["peers"] == result["cold"]["peers"] == 1  # the demo performer's
