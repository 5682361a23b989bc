"""The results store: where saved runs live, which machine made them, and saving without loss.

Layout: `<results>/<machine>/NNNN_<commit>_<date>.json`, one pytest-benchmark run per
file, numbered in the order they were saved on that machine. `<machine>` names what
decides timings: host, CPU model, core count and GPU. Reports written by the commands
(figures, pages, `ab` records) live in their own folders beside the machine folders.

`<results>` is `--results DIR` where given, else `results/` of the backprop-bench
checkout holding the current directory, else `./results`.

This module writes (numbered, locked, never replacing a file) and reads JSON as untrusted
input. What each kind of file holds, its schema version and migration, lives beside it:
store/suite_runs.py for suite runs, store/records.py for what `ab`, `noise` and
`bisect` save.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import platform
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from backprop_bench.errors import UserError

# Folders under <results> that hold what the commands write, never suite runs: records the
# commands save numbered (as runs are, never replaced), and derived files written anew each time.
RECORD_FOLDERS = ("ab", "noise", "bisect")
DERIVED_FOLDERS = ("plots", "pages")
REPORT_FOLDERS = RECORD_FOLDERS + DERIVED_FOLDERS
RUN_NAME = re.compile(r"^(\d{4,12})_(.*)\.json$")  # 0001_..., on past 9999; a planted 245-digit name is no run


def results_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The results folder: `explicit`, else results/ of the checkout holding the working directory, else ./results."""
    if explicit is not None:
        return Path(explicit)
    here = Path.cwd()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "backprop-bench"' in pyproject.read_text(errors="replace"):
            return folder / "results"
    return here / "results"


@cache
def this_machine() -> dict:
    """What identifies this machine for timing: host, CPU model, core count, GPU (None without one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"node": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "gpu": _gpu_name()}


def nvidia_smi(query: str) -> list[str]:
    """nvidia-smi's answer to --query-gpu=QUERY, a line per GPU; none without an NVIDIA GPU or driver.
    The one place that asks it."""
    try:
        answer = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in answer.splitlines() if line.strip()]


def _gpu_name() -> str | None:
    names = nvidia_smi("name")
    return f"{len(names)}x {names[0]}" if len(names) > 1 else (names[0] if names else None)


def machine_of(machine_info: dict) -> dict:
    """The machine a run was saved on, from its machine_info (runs of older versions lack some fields)."""
    suite = machine_info.get("backprop_bench") or {}
    recorded = suite.get("machine")
    if isinstance(recorded, dict):
        return recorded
    cpu = machine_info.get("cpu") or {}
    return {"node": machine_info.get("node", "?"), "cpu": cpu.get("brand_raw") or machine_info.get("processor") or "?",
            "cores": suite.get("cpu_count") or cpu.get("count"), "gpu": suite.get("gpu")}


def machine_label(machine: dict) -> str:
    """For tables: 'vm (Intel Xeon Processor, 2 cores)', with the GPU where there is one."""
    cpu = re.sub(r"\((R|TM)\)|\bCPU\b|@.*$", "", str(machine.get("cpu") or "?"))
    parts = ([" ".join(cpu.split()), f"{machine.get('cores') or '?'} cores"]
             + ([str(machine["gpu"])] if machine.get("gpu") else []))
    return f"{machine.get('node') or '?'} ({', '.join(parts)})"


def machine_id(machine: dict) -> str:
    """The machine's folder name: its label as lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9.]+", "-", machine_label(machine).lower()).strip("-.")


def run_files(results: Path) -> list[Path]:
    """Every JSON file where runs are kept, each once (links resolved), sorted by path.

    Runs are kept in `results` itself and in its machine folders, one level down; the
    store looks nowhere deeper (`--results /` must not walk the whole filesystem).
    """
    if not results.is_dir():
        return []
    seen, files = set(), []
    candidates = [*results.glob("*.json"), *results.glob("*/*.json")]
    for path in sorted(candidates, key=lambda p: (p.is_symlink(), p)):  # a run's own file before links to it
        if path.relative_to(results).parts[0] in REPORT_FOLDERS:
            continue
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling link, link loop
            continue
        if real not in seen and path.is_file():
            seen.add(real)
            files.append(path)
    return sorted(files)


def record_files(results: Path) -> list[Path]:
    """Every numbered record the commands saved under `results` (`ab` comparisons, `noise` A/As), sorted by path."""
    return sorted(path for folder in RECORD_FOLDERS if (results / folder).is_dir()
                  for path in (results / folder).glob("*.json") if RUN_NAME.match(path.name))


def save_new(folder: Path, suffix: str, text: str) -> Path:
    """Save `text` as `folder/NNNN_suffix.json` under the next free number; never replace a file.

    Written whole to a temporary file first, then given its final name with a hard
    link, so a reader never sees a half-written run. The number is taken under a lock
    on the folder, so two savers at once get two numbers even with different suffixes;
    the link fails rather than replace a file that a saver without the lock made.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".saving-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            number = next_number(folder)
            while True:
                final = folder / f"{number:04d}_{suffix}.json"
                try:
                    os.link(temporary, final)
                    return final
                except FileExistsError:  # a saver without the lock took it: the next number, never the same again
                    number += 1
    finally:
        os.unlink(temporary)


def next_number(folder: Path) -> int:
    numbers = [int(match[1]) for path in folder.iterdir() if (match := RUN_NAME.match(path.name))]
    return max(numbers, default=0) + 1


def check_writable(folder: Path) -> None:
    """Raise ValueError naming `folder` unless a file can be created in it; creates nothing.

    A folder not there yet is checked at its nearest existing parent, where it would be made.
    """
    existing = next((f for f in (folder, *folder.parents) if f.exists()), Path("/"))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise UserError(f"cannot write to {folder}: {err.strerror or err}") from None


def check_output(path: Path, results: Path, force: bool = False) -> None:
    """Raise ValueError unless a report may be written to `path`.

    Never a saved file (a run, an `ab` record: what save_new wrote), nor anything in a
    folder of them, nor a JSON file among them (the next read would take it for a run);
    an existing file only with force.
    """
    if path.is_dir():
        raise UserError(f"--output {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise UserError(f"--output {path} is not a regular file (a device, a pipe); give a file name")
    real = path.resolve()
    runs, records = [run.resolve() for run in run_files(results)], [r.resolve() for r in record_files(results)]
    if real in runs or real in records:
        raise UserError(f"--output {path} is a saved {'run' if real in runs else 'record'}; refusing to overwrite it")
    if RUN_NAME.match(path.name):  # a saved run or record of any results folder, not only this one
        raise UserError(f"--output {path} is named like a saved run or record (NNNN_....json); choose another name")
    try:
        inside = real.relative_to(results.resolve()).parts
    except ValueError:
        inside = ()
    json_among_runs = path.suffix == ".json" and inside and inside[0] not in REPORT_FOLDERS
    saved_folders = {saved.parent for saved in runs + records} | {(results / f).resolve() for f in RECORD_FOLDERS}
    if json_among_runs or any(folder == real or folder in real.parents for folder in saved_folders):
        raise UserError(f"--output {path} lies among the saved runs and records in {results}; write it elsewhere")
    if path.exists() and not force:
        raise UserError(f"--output {path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise UserError(f"--output {path}: no such folder {path.parent}")


def write_output(path: Path, text: str) -> None:
    """Write a report file whole or not at all, any failure as one ValueError line.

    The text goes to a temporary file beside it that then replaces `path`: a failure
    midway leaves the old file as it was. A link at `path` is replaced, never followed,
    so a link planted among derived files (pages/, plots/) cannot reach a saved run.
    """
    final = path.parent.resolve() / path.name
    try:
        data = text.encode("utf-8")
        final.parent.mkdir(parents=True, exist_ok=True)  # a default output's folder (pages/): --output's must exist
        handle, temporary = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    except UnicodeEncodeError as err:
        raise UserError(f"cannot write {path}: text that is not valid Unicode ({err.reason})") from None
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, final)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


# --- reading any saved file: shared results are untrusted input ------------------------------------

class SkippedRun(UserWarning):
    """A file under results/ that is not a readable benchmark run."""


def is_number(value) -> bool:
    try:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits
        return False


def expect(mapping: dict, key: str, kind, where: str, required: bool = False) -> None:
    if key not in mapping or (mapping[key] is None and not required):
        if required:
            raise UserError(f"{where} lacks {key!r}")
        return
    if not isinstance(mapping[key], kind):
        raise UserError(f"{where}.{key} is a {type(mapping[key]).__name__}, not a {kind.__name__}")


def validate_machine_info(info) -> None:
    """Raise ValueError unless `info` has the shape store.machine_of and the page read (runs and `ab` records)."""
    if not isinstance(info, dict):
        raise UserError(f"machine_info is a {type(info).__name__}, not a dict")
    for key in ("cpu", "backprop_bench"):
        expect(info, key, dict, "machine_info")
    for key in ("env", "machine"):
        expect(info.get("backprop_bench") or {}, key, dict, "machine_info.backprop_bench")
    suite = info.get("backprop_bench") or {}
    for key in ("node", "cpu"):
        expect(suite.get("machine") or {}, key, str, "machine_info.backprop_bench.machine")
    expect(suite, "jax_devices", list, "machine_info.backprop_bench")
    if not all(isinstance(d, str) for d in suite.get("jax_devices") or []):
        raise UserError("machine_info.backprop_bench.jax_devices holds something other than text")


# A JSON escape of a UTF-16 surrogate: the text can hold a lone one, which no file or terminal can show.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def invalid_text(value, where: str = "") -> str | None:
    """Where in `value` (parsed JSON) a string holds a lone surrogate, e.g. 'machine_info.node'; None if nowhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "the file"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = invalid_text(key, f"{where} key") or invalid_text(item, f"{where}.{key}".lstrip("."))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := invalid_text(item, f"{where}[{index}]"):
                return found
    return None


def read_json(path: Path):
    """A saved file's JSON; ValueError saying why when it cannot be read, or holds text that is not Unicode."""
    try:
        text = path.read_text()
        value = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise UserError(getattr(err, "strerror", None) or err) from None
    except RecursionError:
        raise UserError("nested too deeply") from None
    if SURROGATE_ESCAPE.search(text) and (where := invalid_text(value)):
        raise UserError(f"{where} holds text that is not valid Unicode (a lone surrogate)")
    return value
