"""Records on disk: what `ab`, `noise` and `bisect` save under <results>/ab, noise and bisect, numbered.

Each kind carries its schema version under its own key; readers skip, with one warning
naming the file, any record that is not one they can read (shared results are untrusted).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from backprop_bench import store
from backprop_bench.errors import UserError

AB_SCHEMA = 2      # "backprop_bench_ab": 1, one interval over all pairs; 2, blocks (both read)
BISECT_SCHEMA = 1  # "backprop_bench_bisect"
AB, NOISE, BISECT = store.RECORD_FOLDERS  # their folders under <results>, as the store keeps them apart from runs
# ab's verdicts: past the threshold; certain but not past it; none past it (same) or not resolved.
VERDICTS = ("regression", "improvement", "slower", "faster", "same", "inconclusive")


def save(record: dict, folder: Path, label: str) -> Path:
    """Save a record as folder/NNNN_<label>.json under the next free number, never replacing one; a failure as
    one UserError."""
    try:
        return store.save_new(folder, re.sub(r"[^A-Za-z0-9.~-]+", "-", label).strip("-"), json.dumps(record, indent=1))
    except OSError as err:
        raise UserError(f"cannot save in {folder}: {err.strerror or err}") from None


def read_records(folder: Path, rows_of: Callable[[Path, object], list[dict]]) -> list[dict]:
    """The rows `rows_of(path, parsed JSON)` makes of every record saved in `folder`, by name; a record that is
    not a regular file or that `rows_of` refuses is skipped with one warning (shared results are untrusted)."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        if not path.is_file():  # a pipe or a device named like a record would hang the read
            warnings.warn(f"skipping {path}: not a regular file", store.SkippedRun, stacklevel=3)
            continue
        try:
            rows += rows_of(path, store.read_json(path))
        except (ValueError, KeyError, TypeError, OverflowError) as err:
            reason = f"it lacks the field {err}" if isinstance(err, KeyError) else err
            warnings.warn(f"skipping {path}: {reason}", store.SkippedRun, stacklevel=3)
    return rows


def load_comparisons(results: Path, folder: str = AB) -> pd.DataFrame:
    """Every `ab` comparison saved under <results>/ab/ (`noise`'s A/A records: folder="noise"): one row per
    benchmark per comparison; noise records add each benchmark's se and smallest_flagged."""
    frame = pd.DataFrame(read_records(results / folder, _comparison_rows))
    if not frame.empty:
        frame["datetime"] = pd.to_datetime(frame["datetime"], errors="coerce", utc=True)
    return frame


def _side_label(side: dict) -> str:
    """'HEAD (c6e72cfa8739)', or 'working tree' alone where the label already says what it is."""
    commit = str(side["commit"])
    return side["label"] if commit == side["label"] else f"{side['label']} ({commit[:12]})"


def _comparison_rows(path: Path, record) -> list[dict]:
    if (not isinstance(record, dict) or record.get("backprop_bench_ab") not in (1, AB_SCHEMA)
            or not isinstance(record["benchmarks"], list)):
        raise UserError("not a backprop-bench ab record")
    store.validate_machine_info(record["machine_info"])
    sides = {side: record[side] for side in ("baseline", "candidate")}
    for side, info in sides.items():
        store.expect(record, side, dict, "record", required=True)
        for key in ("label", "commit"):
            store.expect(info, key, str, side, required=True)
    head = {"comparison": path.stem, "path": str(path), "datetime": record["datetime"],
            "machine": store.machine_label(store.machine_of(record["machine_info"])),
            "threshold": float(record["threshold"]),
            **{side: _side_label(info) for side, info in sides.items()}}
    rows = []
    for index, bench in enumerate(record["benchmarks"]):
        if not isinstance(bench, dict):
            raise UserError(f"benchmarks[{index}] is not an object")
        if bench["verdict"] not in VERDICTS:
            raise UserError(f"unknown verdict {bench['verdict']!r}")
        rows.append({**head, "benchmark": str(bench["name"]), "verdict": bench["verdict"], "pairs": int(bench["pairs"]),
                     **{key: float(bench[key]) for key in ("baseline_median_s", "candidate_median_s", "ratio",
                                                            "ci_low", "ci_high")},
                     **{key: float(bench[key]) for key in ("se", "smallest_flagged") if key in bench}})
    return rows


def load_bisections(results: Path) -> pd.DataFrame:
    """Every bisection saved under <results>/bisect/, one row each, newest last; a malformed record is skipped
    with one warning (a shared results folder is untrusted input)."""
    rows = read_records(results / BISECT, lambda path, record: [_bisection_row(path, record)])
    frame = pd.DataFrame(rows, columns=["record", "datetime", "machine", "good", "bad", "benchmark", "threshold",
                                        "first_bad", "subject", "candidates", "steps", "ratio", "ci_low", "ci_high"])
    frame["datetime"] = pd.to_datetime(frame["datetime"], errors="coerce", utc=True)
    return frame.sort_values("datetime", kind="stable")


def _bisection_row(path: Path, record) -> dict:
    if not isinstance(record, dict) or record.get("backprop_bench_bisect") != BISECT_SCHEMA:
        raise UserError("not a backprop-bench bisect record")
    store.validate_machine_info(record["machine_info"])
    for key in ("good", "bad", "benchmark", "datetime"):
        store.expect(record, key, str, "record", required=True)
    first, across = record["first_bad"], record["across"]
    for key in ("commit", "subject"):
        store.expect(first, key, str, "first_bad", required=True)
    if not (isinstance(record["steps"], list) and isinstance(record["candidates"], list)
            and all(isinstance(sha, str) for sha in record["candidates"])):
        raise UserError("steps and candidates must be lists (candidates of commit ids)")
    return {"record": path.stem, "datetime": record["datetime"],
            "machine": store.machine_label(store.machine_of(record["machine_info"])), "good": record["good"],
            "bad": record["bad"], "benchmark": record["benchmark"], "threshold": float(record["threshold"]),
            "first_bad": first["commit"], "subject": first["subject"], "candidates": len(record["candidates"]),
            "steps": len(record["steps"]), **{key: float(across[key]) for key in ("ratio", "ci_low", "ci_high")}}
