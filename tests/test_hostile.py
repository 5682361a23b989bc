"""Shared run files are untrusted input: nothing a run or `ab` record holds runs in the page, drives the
terminal, breaks a command, or costs a file already saved.

Each test here failed on commit 621797c, before the fixes it names.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from backprop_bench import ab, report, store
from backprop_bench.cli import main, printable
from backprop_bench.store import suite_runs
from tests.browser import CHROMIUM, DRAWN, chromium
from tests.runs import full_run, write_ab, write_run
from tests.signals import popen_as_from_a_terminal
from tests.test_ab import ROOT, TINY, assert_clean, fake, git, state  # noqa: F401 (fake is a fixture)

SCRIPT = "</script><script>document.title='PWNED';window.pwned=1</script>"
IMAGE = "<img src=x onerror=window.pwned=2>"
LINK = '<a href="https://evil.example/">click</a><b>bold</b>'


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    return tmp_path / "results"


def hostile_run(results, number=1, node=IMAGE):
    """A run whose every kind of string carries markup: workload, benchmark names, machine, commit, versions."""
    workload = f"seed-affine{SCRIPT}"
    timings = {f"{workload}[numpy-handwritten-cpu-float64]": [1e-2] * 5,
               f"{workload}[torch-eager{LINK}-cpu-float64]": [2e-2] * 5,
               f"mlp-256x64{IMAGE}[numpy-handwritten-cpu-float32]": [1e-3] * 5}
    path = write_run(results, number, timings, node=node, extra={
        name: {"epoch_flops": 2e6, "working_set_bytes": 1e5, "peak_memory_bytes": 2e5} for name in timings})
    run = json.loads(path.read_text())
    run["commit_info"]["id"] = f"abc{SCRIPT}"
    run["machine_info"]["backprop_bench"]["torch"] = LINK
    run["machine_info"]["cpu"]["brand_raw"] = f"CPU{LINK}"
    path.write_text(json.dumps(run))
    return path


def hostile_ab(results):
    path = write_ab(results, "0001_x", [(f"seed-affine{SCRIPT}[numpy-handwritten-cpu-float64]", 1.2, "regression")])
    record = json.loads(path.read_text())
    record["machine_info"]["node"] = IMAGE
    record["baseline"]["label"] = LINK
    path.write_text(json.dumps(record))


# --- 1. the page: every string a run supplies is inert ---------------------------------------------

def test_nothing_a_run_supplies_reaches_the_page_as_markup(results, tmp_path):
    hostile_run(results, 1)
    hostile_run(results, 2)
    hostile_ab(results)
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    text = (tmp_path / "page.html").read_text()
    for payload in (SCRIPT, IMAGE, LINK, "<b>bold", "evil.example/\">"):
        assert payload not in text, payload
    assert 'id="figure-' in text and not any('"' in ident or "<" in ident for ident in
                                             (part.split('"')[0] for part in text.split('id="figure-')[1:]))


def test_the_page_of_hostile_runs_in_a_browser_runs_nothing_and_links_nowhere(results, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    hostile_run(results, 1)
    hostile_run(results, 2)
    hostile_ab(results)
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    with chromium(tmp_path / "profile") as (tab, errors, blocked):
        tab.goto((tmp_path / "page.html").as_uri(), wait_until="load")
        tab.wait_for_function(DRAWN)
        tab.mouse.move(600, 600)  # hover draws labels from the data too
        assert tab.evaluate("window.pwned") is None
        assert "PWNED" not in tab.title()
        assert tab.locator("img").count() == 0  # the injected image is text, nowhere an element
        assert tab.evaluate("[...document.querySelectorAll('a')].filter(a => !a.href.startsWith('file:')"
                            " && !a.getAttribute('href').startsWith('#')).map(a => a.href)") == []
        assert tab.locator("b", has_text="bold").count() == 0
        # The strings are shown as written, in HTML and in the figures' SVG text alike.
        assert tab.locator("#overview th", has_text="</script>").count() >= 1
        svg_text = tab.evaluate("[...document.querySelectorAll('svg text')].map(t => t.textContent).join(' ')")
        assert "<img src=x onerror=window.pwned=2>" in svg_text or "onerror" in svg_text
        assert errors == [] and blocked == []


def test_inert_spec_escapes_data_and_keeps_templates():
    spec = report._inert_spec({"name": "<b>x</b>", "y": ["<a>", 1.0],
                             "hovertemplate": "%{y}<extra>%{fullData.name}</extra>"})
    assert spec == {"name": "&lt;b&gt;x&lt;/b&gt;", "y": ["&lt;a&gt;", 1.0],
                    "hovertemplate": "%{y}<extra>%{fullData.name}</extra>"}
    assert report._element_id("figure-sweep") == "figure-sweep"
    assert report._element_id(f"figure-workload-{SCRIPT}").startswith("figure-workload-")
    assert all(c.isalnum() or c == "-" for c in report._element_id(f"figure-workload-{SCRIPT}"))


# --- 2. text that is not Unicode: named, and no page overwritten with nothing ----------------------

def test_a_lone_surrogate_is_named_and_the_old_page_kept(results, capsys):
    full_run(results, 1)
    assert main(["report"]) == 0
    written = results / "pages" / "0001_abc_2026-11-25.html"
    before = written.read_bytes()
    bad = Path(full_run(results, 2, when="2026-11-26T10:00:00"))
    bad.write_text(bad.read_text().replace('"node": "box"', '"node": "box\\ud800"'))
    capsys.readouterr()
    assert main(["report", "1"]) == 0  # the bad run is skipped with one warning naming file and field
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"backprop-bench: warning: skipping {bad}: machine_info.node holds text that is not valid "
                   "Unicode (a lone surrogate)"]
    pages = {path: path.read_bytes() for path in (results / "pages").iterdir()}
    assert pages[written] != b"" and pages[written].startswith(before[:15])
    assert main(["report", "2"]) == 2
    assert "machine_info.node holds text that is not valid Unicode" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in (results / "pages").iterdir()} == pages


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "page.html"
    target.write_text("the old page")
    with pytest.raises(ValueError, match=f"cannot write {target}: text that is not valid Unicode"):
        store.write_output(target, "new \ud800 page")
    assert target.read_text() == "the old page" and os.listdir(tmp_path) == ["page.html"]


# --- 3. `ab` records of the wrong shape are skipped, never a traceback ------------------------------

@pytest.mark.parametrize("machine_info", [None, [], {"cpu": "str"}, {"backprop_bench": "x"}])
def test_an_ab_record_with_a_bad_machine_info_is_skipped(results, tmp_path, machine_info, capsys):
    full_run(results, 1)
    path = write_ab(results, "0001_x", [("seed-affine[numpy-handwritten-cpu-float64]", 1.0, "same")])
    record = json.loads(path.read_text())
    record["machine_info"] = machine_info
    path.write_text(json.dumps(record))
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"backprop-bench: warning: skipping {path}: machine_info")


# --- 4. a finished comparison is shown even when it cannot be saved --------------------------------

def test_a_comparison_that_cannot_be_saved_is_shown_with_its_own_exit_status(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(fake)

    def read_only(*_):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store, "save_new", read_only)
    status = main(["ab", "HEAD", "--budget", "1", "--results", str(tmp_path / "results")])
    out, err = capsys.readouterr()
    assert status == 4
    assert TINY in out and "regression(s)" in out
    shown = out.rstrip().splitlines()  # the whole table, to its footnote (and, on a busy machine, the note saying so)
    assert shown[-1] == ab.RATIO_NOTE or (shown[-2] == ab.RATIO_NOTE and shown[-1].startswith("the machine was busy"))
    assert err.strip().splitlines()[-1] == (f"backprop-bench: error: the record of the table above was not saved: "
                                            f"cannot save in {tmp_path / 'results' / 'ab'}: Read-only file system")


# --- 5. numbers past 9999 ---------------------------------------------------------------------------

def test_saving_goes_on_past_9999_without_hanging(tmp_path):
    folder = tmp_path / "ab"
    folder.mkdir()
    for name in ("9999_x.json", "10000_x.json", "0005_y.json"):
        (folder / name).write_text("{}")
    saved = []
    worker = threading.Thread(target=lambda: saved.append(store.save_new(folder, "x", "{}")), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "save_new hung"
    assert saved[0].name == "10001_x.json"


def test_a_run_numbered_past_9999_is_named_by_its_number(results, capsys):
    full_run(results, 12345)
    assert main(["compare", "12345"]) == 0
    assert "run box/12345_abc_2026-11-25" in capsys.readouterr().out


# --- 6. --output never replaces a saved record -----------------------------------------------------

@pytest.mark.parametrize("target, message", [("ab/0001_x.json", "is a saved record"),
                                             ("ab/page.html", "lies among the saved runs and records")])
def test_output_force_never_touches_an_ab_record(results, target, message, capsys):
    full_run(results, 1)
    write_ab(results, "0001_x", [("seed-affine[numpy-handwritten-cpu-float64]", 1.0, "same")])
    (results / "ab" / "page.html").write_text("x")
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert main(["report", "--output", str(results / target), "--force"]) == 2
    assert message in capsys.readouterr().err
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before


# --- 7. worktrees: SIGHUP cleans up; trees of an ab that was killed are pruned at the next start ---

def test_sighup_ends_ab_like_ctrl_c(fake, tmp_path):
    before = state(fake)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path / "temp")}
    command = popen_as_from_a_terminal([sys.executable, "-P", "-m", "backprop_bench.cli", "ab", "HEAD",
                                        "--budget", "60", "--threshold", "0", "--results", str(tmp_path / "results")],
                                       cwd=fake, env=env, stderr=subprocess.PIPE, text=True)
    while len(git(fake, "worktree", "list").splitlines()) < 2 and command.poll() is None:
        subprocess.run(["sleep", "0.05"])
    subprocess.run(["sleep", "1"])
    command.send_signal(signal.SIGHUP)
    _, err = command.communicate(timeout=30)
    assert command.returncode == 130 and "Traceback" not in err, err
    assert_clean(fake, before)


def test_under_nohup_sighup_is_left_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with ab.sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_trees_of_a_killed_ab_are_removed_at_the_next_start(fake, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / "temp" / f"{ab.TREE_PREFIX}{dead.pid}-abcd" / "tree"
    git(fake, "worktree", "add", "--detach", "--quiet", str(stale), "HEAD")
    mine = tmp_path / "temp" / f"{ab.TREE_PREFIX}{os.getpid()}-efgh" / "tree"  # a live ab's: left alone
    git(fake, "worktree", "add", "--detach", "--quiet", str(mine), "HEAD")
    assert ab.prune_stale_trees(fake) == [stale]
    assert not stale.parent.exists() and mine.is_dir()
    assert str(stale) not in git(fake, "worktree", "list") and str(mine) in git(fake, "worktree", "list")


# --- 8. terminal escapes in a run's strings are shown escaped ---------------------------------------

def test_escape_sequences_reach_the_terminal_escaped(results, capsys):
    timings = {"seed-affine\x1bc\x9b2J[numpy-handwritten-cpu-float64]": [1e-2] * 5,  # reset; C1 clear screen
               "seed-affine\x1bc\x9b2J[torch-eager-cpu-float64]": [2e-2] * 5}
    path = write_run(results, 1, timings, node="box")
    path.write_text(path.read_text().replace('"node": "box"', '"node": "box\\u001b]0;owned\\u0007"'))
    assert main(["compare", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "seed-affine\\x1bc\\x9b2J" in out and "\\x1b]0;owned\\x07" in out


def test_printable_keeps_newlines_and_tabs():
    assert printable("a\tb\nc\x1b[Kd\x9be\r") == "a\tb\nc\\x1b[Kd\\x9be\\r"


# --- 9-11. arguments refused in one line before anything starts or is created ----------------------

def one_line(capsys, *args) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_too_many_processes_for_the_memory_is_refused(fake, monkeypatch, capsys):
    monkeypatch.chdir(fake)
    line = one_line(capsys, "ab", "HEAD", "--processes", "1000")
    assert "--processes 1000 starts 2000 workers of about 410 MB" in line and "use at most" in line


@pytest.mark.parametrize("args, message", [
    (["--budget", "nan"], "--budget must be a positive, finite time"),
    (["--budget", "inf"], "--budget must be a positive, finite time"),
    (["--device", "tpu"], "unknown --device 'tpu'"),
])
def test_bad_ab_arguments_are_one_line(fake, monkeypatch, capsys, args, message):
    monkeypatch.chdir(fake)
    assert message in one_line(capsys, "ab", "HEAD", *args)


def test_cuda_without_a_gpu_is_refused_before_any_worker(fake, monkeypatch, capsys):
    if store.this_machine()["gpu"]:
        pytest.skip("this machine has a GPU")
    monkeypatch.chdir(fake)
    monkeypatch.setattr(ab, "start_block", lambda *_: pytest.fail("a worker started"))
    assert "--device cuda: no NVIDIA GPU here" in one_line(capsys, "ab", "HEAD", "--device", "cuda")


def test_ab_outside_a_checkout_or_of_a_bad_revision_creates_nothing(fake, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert "not inside a git checkout" in one_line(capsys, "ab", "HEAD", "--results", str(elsewhere / "r"))
    monkeypatch.chdir(fake)
    assert "unknown revision 'nope'" in one_line(capsys, "ab", "nope", "--results", str(elsewhere / "r"))
    assert list(elsewhere.iterdir()) == []


def test_runs_are_looked_for_only_where_they_are_kept(results, tmp_path, capsys):
    deep = full_run(results / "a" / "b", 1)  # results/a/b/box/0001_...json: not where runs are kept
    assert deep.is_file() and store.run_files(results) == []
    assert "no saved runs" in one_line(capsys, "report", "--results", str(results))
    assert not (results / "pages").exists()


def test_report_of_the_root_folder_is_quick_and_writes_nothing(capsys):
    if Path("/pages").exists():
        pytest.skip("/pages exists here")
    assert main(["report", "--results", "/"]) == 2
    assert "no saved runs" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not Path("/pages").exists()


def test_a_run_without_numpy_shows_no_nan(results, tmp_path):
    write_run(results, 1, {"seed-affine[torch-eager-cpu-float64]": [2e-2] * 5,
                           "seed-affine[jax-jit-loop-cpu-float64]": [1e-2] * 5})
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    text = (tmp_path / "page.html").read_text()
    assert "nanx" not in text and "hsl(nan" not in text and "no NumPy" in text


def test_report_warns_once_per_bad_file(results, tmp_path, capsys):
    full_run(results, 1)
    (results / "box" / "0002_bad.json").write_text("{")
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "skipping" in line]
    assert len(warned) == 1, warned


def test_no_complete_run_names_no_command(results, capsys):
    full_run(results, 1, status={"complete": False, "why": "interrupted"})
    line = one_line(capsys, "report")
    assert "every saved run is incomplete or partial; name one by its number" in line and "compare" not in line


def test_stdout_to_a_full_device_is_one_line(results, tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    full_run(results, 1)
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "backprop_bench.cli", "compare", "--results", str(results)],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == "backprop-bench: error: cannot write the output: No space left on device"


# --- a second probe (a fresh clone, every surface again): what it found, each fixed ---------------

def test_a_link_among_derived_files_never_reaches_a_saved_run(results, capsys):
    first, second = full_run(results, 1), full_run(results, 2, when="2026-11-26T10:00:00")
    before = first.read_bytes()
    (results / "pages").mkdir()
    (results / "pages" / f"{second.stem}.html").symlink_to(first)
    folder = results / "plots" / "box" / second.stem
    folder.mkdir(parents=True)
    (folder / "time_per_epoch.svg").symlink_to(first)
    assert main(["report", "2"]) == 0 and main(["plot", "2"]) == 0
    assert first.read_bytes() == before
    assert not (results / "pages" / f"{second.stem}.html").is_symlink()


def edit_first_benchmark(run_path, **extra):
    run = json.loads(run_path.read_text())
    run["benchmarks"][0]["extra_info"].update(extra)
    run_path.write_text(json.dumps(run))


def test_extra_info_never_replaces_the_readers_own_fields(results, tmp_path, capsys):
    path = full_run(results, 1)
    edit_first_benchmark(path, path=str(tmp_path / "nowhere.json"), median="x", run="box/0009", machine={"a": 1})
    assert main(["compare", "1"]) == 0 and main(["report", "--output", str(tmp_path / "p.html")]) == 0
    frame = suite_runs.load_runs(results=results)
    assert set(frame["path"]) == {str(path)} and set(frame["run"]) == {"box/0001_abc_2026-11-25"}


def test_a_pipe_named_like_an_ab_record_is_skipped(results, tmp_path, capsys):
    full_run(results, 1)
    (results / "ab").mkdir()
    os.mkfifo(results / "ab" / "0002_f.json")
    assert main(["report", "--output", str(tmp_path / "p.html")]) == 0
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("change", [
    lambda run: run["machine_info"].update(backprop_bench=None),
    lambda run: run["machine_info"]["backprop_bench"].update(machine={"node": "x", "cpu": "c", "cores": 2, "gpu": 5}),
])
def test_odd_but_harmless_machine_fields_are_read(results, change, capsys):
    path = full_run(results, 1)
    run = json.loads(path.read_text())
    change(run)
    path.write_text(json.dumps(run))
    assert main(["compare", "--results", str(results)]) == 0


@pytest.mark.parametrize("change, reason", [
    (lambda run: run["benchmarks"][0]["stats"].update(median=10 ** 400), "is not a positive number"),
    (lambda run: run["commit_info"].update(id=123), "commit_info.id is a int"),
    (lambda run: run["machine_info"]["backprop_bench"].update(jax_devices=[1, 2]), "jax_devices"),
    (lambda run: run["benchmarks"][0]["extra_info"].pop("epochs"), "needs a name 'workload[case]' and its epochs"),
    (lambda run: run["benchmarks"][0].update(name="seed-affine"), "needs a name 'workload[case]' and its epochs"),
    (lambda run: run["benchmarks"][0]["extra_info"].update(workload="a\nFAKE LINE"), "with a line break"),
])
def test_wrong_types_skip_the_file_with_one_warning(results, change, reason, capsys):
    full_run(results, 1)
    path = full_run(results, 2, when="2026-11-26T10:00:00")
    run = json.loads(path.read_text())
    change(run)
    path.write_text(json.dumps(run))
    assert main(["compare", "1"]) == 0 and main(["report", "1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(f"skipping {path}" in line and reason in line for line in err), err


def test_output_never_replaces_a_saved_file_of_another_results_folder_nor_a_device(results, tmp_path, capsys):
    full_run(results, 1)
    other = full_run(tmp_path / "other", 1)
    assert "named like a saved run or record" in one_line(capsys, "compare", "1", "--output", str(other), "--force")
    assert "not a regular file" in one_line(capsys, "compare", "1", "--output", "/dev/null", "--force")


def test_plot_draws_dollar_signs_as_written(results, capsys):
    write_run(results, 1, {"$\\sqrt{x}^{\\sqrt{y}}$[numpy-handwritten-cpu-float64]": [1e-2] * 5,
                           "$\\sqrt{x}^{\\sqrt{y}}$[torch-eager-cpu-float64]": [2e-2] * 5})
    assert main(["plot", "1"]) == 0


def test_check_never_suggests_a_command_made_of_a_files_text(results, capsys):
    from tests.runs import BENCHMARKS, draws

    timings = {name: draws(i, 1e-3) for i, name in enumerate(BENCHMARKS)}
    first = write_run(results, 1, timings, calibration={"numpy": 0.5})
    write_run(results, 2, timings, calibration={"numpy": 1.0}, when="2026-11-25T11:00:00")
    run = json.loads(first.read_text())
    run["commit_info"]["id"] = "$(sh<x) -"
    first.write_text(json.dumps(run))
    main(["check", "--baseline", "1"])
    out = capsys.readouterr().out
    assert "backprop-bench ab BASELINE_REVISION" in out and "$(sh" not in out.split("machine drift")[1].split("\n")[0]


def test_csv_cells_never_start_a_formula(results, capsys):
    write_run(results, 1, {"=HYPERLINK(1)[numpy-handwritten-cpu-float64]": [1e-2] * 5})
    assert main(["compare", "1", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "'=HYPERLINK(1)" in out and ",=HYPERLINK" not in out


def test_a_quote_in_a_name_is_drawn_as_a_quote():
    assert report.inert('say "hi"') == "say &#34;hi&#34;"


def test_markdown_cells_keep_their_pipes_and_files_get_no_escapes(results, tmp_path):
    write_run(results, 1, {"a\x1bc[numpy-hand|written-cpu-float64]": [1e-2] * 5})
    assert main(["compare", "1", "--format", "markdown", "--output", str(tmp_path / "t.md")]) == 0
    text = (tmp_path / "t.md").read_text()
    assert "| numpy-hand\\|written-cpu-float64 |" in text and "\x1b" not in text
