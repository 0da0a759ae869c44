"""The cluster bench in short (bench/cluster.py): two node processes behind HAProxy, a few
viewers; every figure it prints is a measurement, the failover's included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster_procs import HAPROXY

CLUSTER = Path(__file__).resolve().parent.parent / "bench" / "cluster.py"


@pytest.mark.needs(HAPROXY, "HAProxy (Debian's haproxy package; `make test` installs it)")
def test_the_cluster_bench_measures_chat_reactions_and_failover() -> None:
    command = [
        sys.executable,
        str(CLUSTER),
        "--nodes=2",
        "--viewers=4",
        "--seconds=2",
        "--join-spread=1",
        "--interact-seconds=3",
        "--failover-timeout=20",
        "--timeout=150",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["viewers_by_node"] == [2, 2]
    assert result["origin_streams_out"] == 1
    for name in (
        "chat_p99_ms",
        "reaction_p99_ms",
        "reaction_lobby_p99_ms",
        "failover_p95_s",
        "edge_extra_latency_ms",
        "other_load_pct",
    ):
        assert isinstance(result[name], int | float), (name, result[name])
    assert all(isinstance(cpu, int | float) for cpu in result["cpu_per_viewer_pct_by_node"])
    assert result["chat_missing"] == 0
    assert result["reactions_uncovered"] == 0
    assert result["failover_viewers"] == 2
    assert result["failover_not_back"] == 0
