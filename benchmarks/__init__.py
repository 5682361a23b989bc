"""Timings only: the suite (`pytest --benchmark-only`) and the scripts that check `ab`, `bisect`, `history` and the
machine (`python -m benchmarks.NAME`)."""

from datetime import datetime, timezone
from pathlib import Path

from backprop_bench import store


def dated(kind: str) -> Path:
    """results/KIND/<UTC date and time>: where a script keeps what one run of it measured (a folder, or with
    .json a file)."""
    return store.results_dir() / kind / datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%S")
