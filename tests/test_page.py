"""`backprop-bench report`: the page's content, its refusals, and the page as headless Chromium shows it."""

import os
import re
from pathlib import Path

import pytest

from backprop_bench import compare, report, store
from backprop_bench.cli import main
from backprop_bench.store import records, suite_runs
from tests.browser import CHROMIUM, DRAWN, chromium
from tests.runs import full_run, write_ab, write_run


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    return tmp_path / "results"


def snapshot(folder: Path) -> dict:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def browser(tmp_path):
    """Open a page in headless Chromium, or skip with the reason where it cannot run."""
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    return lambda width=1440: chromium(tmp_path / "profile", width)


def test_page_in_a_browser(results, tmp_path, browser, capsys):
    for number, day in enumerate(("24", "25", "26"), 1):
        full_run(results, number, when=f"2026-11-{day}T10:00:00", status={"complete": True, "wall_s": 61.5 + number})
    write_ab(results, "one", [("seed-affine[jax-jit-loop-cpu-float64]", 1.2, "regression")])
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    assert "wrote" in capsys.readouterr().out
    expected = compare.comparison(suite_runs.load_runs(results=results), "box/0003_abc_2026-11-26")
    with browser() as (tab, errors, blocked):
        tab.goto((tmp_path / "page.html").as_uri(), wait_until="load")
        tab.wait_for_function(DRAWN)
        for section in report.SECTIONS:
            assert tab.locator(f"section#{section} h2").count() == 1, section
            assert tab.locator(f"section#{section} p.how").count() >= 1, section
        assert tab.locator("section#run tr", has_text="wall time").inner_text().split() == ["wall", "time", "64.5", "s"]
        cells = tab.locator("#overview td.cell")
        assert cells.count() == len(expected)
        shown = {(cells.nth(i).get_attribute("data-workload"), cells.nth(i).get_attribute("data-column"))
                 for i in range(cells.count())}
        assert shown == {(w, n.rsplit("-", 1)[0]) for w, n in zip(expected["workload"], expected["name"])}
        assert tab.locator("#overview .star").count() == expected["workload"].nunique()
        # Every figure drew marks from its data: bars or points or lines in its SVG.
        drawn = tab.evaluate("""[...document.querySelectorAll('.js-plotly-plot')].map(
            fig => fig.data.length && fig.querySelectorAll('.point, path.js-line').length)""")
        assert len(drawn) >= 6 and all(drawn), str(drawn)
        assert tab.locator("#history text", has_text="regression").count() >= 1  # the ab record's verdict
        # plotly ships arrays base64-encoded; _fullData holds them decoded, as drawn.
        sweep = dict(tab.evaluate("document.getElementById('figure-sweep')._fullData"
                                  ".map(t => [t.name, Array.from(t.y)])"))
        numpy = expected[expected["name"] == "numpy-handwritten-cpu-float32"].sort_values("epoch_flops")
        assert sweep["numpy-handwritten-cpu"] == pytest.approx(list(numpy["time_per_epoch_s"]))
        # Names are escaped in the spec (report.inert) and drawn as written.
        roofline = next(y for name, y in sweep.items()
                        if name.startswith("the machine&#x27;s matmul rate, 100 GFLOP/s"))
        assert tab.locator("#figure-sweep .legendtext", has_text="the machine's matmul rate, 100 GFLOP/s").count() == 1
        assert roofline == pytest.approx([2e6 / 100e9, 2e10 / 100e9])  # the best calibration: torch's 100 GFLOP/s
        assert errors == [] and blocked == []


def test_two_machines_are_normalized_side_by_side(results, tmp_path):
    full_run(results, 1, node="laptop")
    full_run(results, 1, node="runner", speed=0.5, when="2026-11-25T11:00:00")
    laptop, runner = (str(p) for p in sorted(results.rglob("*.json")))
    assert main(["report", laptop, runner, "--output", str(tmp_path / "two.html")]) == 0
    text = (tmp_path / "two.html").read_text()
    assert "come from 2 machines" in text
    assert "relative to NumPy" in text and "1 = the roofline" in text
    grids = [re.findall(r'data-column="([^"]+)"[^>]*>([0-9.]+)x', grid)
             for grid in text.split('<div class="grid">')[1:]]
    # The runner is twice as slow across the board: relative to its own NumPy, each cell reads as the laptop's.
    assert len(grids) == 2 and len(grids[0]) == 16 and grids[0] == grids[1]


def small_run(results, number=1, when="2026-11-25T10:00:00"):
    """A run whose fastest on seed-affine is the C loop, and whose jax-jit-step peaks below mlp-1024x256's
    working set."""
    seed, sweep = "seed-affine[{}-cpu-float64]", "mlp-1024x256[{}-cpu-float32]"
    c_loop = seed.format("reference-c-loop")
    memory = {"working_set_bytes": 2.9e6, "epoch_flops": 1e8}
    write_run(results, number, {seed.format("numpy-handwritten"): [1e-2] * 5, seed.format("jax-jit-loop"): [1e-4] * 5,
                                c_loop: [3e-5] * 5, sweep.format("numpy-handwritten"): [1.0] * 5,
                                sweep.format("jax-jit-step"): [0.5] * 5}, when=when,
              extra={c_loop: {"backend": "reference-c-loop", "variant": "c-loop", "reference": True},
                     sweep.format("numpy-handwritten"): {**memory, "peak_memory_bytes": 3.2e6},
                     sweep.format("jax-jit-step"): {**memory, "peak_memory_bytes": 1.3e6}})


def test_references_are_set_apart_and_never_starred(results, tmp_path):
    small_run(results)
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    text = (tmp_path / "page.html").read_text()
    starred = re.findall(r'data-workload="([^"]+)" data-column="([^"]+)"[^>]*>(?:(?!</td>).)*class="star"', text)
    assert starred == [("seed-affine", "jax-jit-loop-cpu"), ("mlp-1024x256", "jax-jit-step-cpu")]
    assert re.findall(r'<td class="cell reference" data-workload="[^"]+" data-column="([^"]+)"', text) == [
        "reference-c-loop-cpu"]
    assert re.search(r'<th class="reference">reference-c-loop-cpu<small>reference</small></th>', text)


def test_memory_below_the_working_set_says_why(results, tmp_path):
    small_run(results)
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    notes = re.findall(r'<p class="note">(.*?)</p>', (tmp_path / "page.html").read_text())
    assert len(notes) == 1
    assert "jax-jit-step-cpu on mlp-1024x256: 1.3 MB, under its 2.9 MB" in notes[0]
    assert "numpy" not in notes[0] and "malloc_trim" in notes[0]
    full_run(results, 2)  # every peak above its working set
    assert main(["report", "--output", str(tmp_path / "full.html")]) == 0
    assert '<p class="note">' not in (tmp_path / "full.html").read_text()


def test_history_of_one_run_is_a_line_not_a_figure(results, tmp_path):
    small_run(results)
    assert main(["report", "--output", str(tmp_path / "one.html")]) == 0
    one = (tmp_path / "one.html").read_text()
    assert "one run so far: history needs two or more runs" in one and 'id="figure-history' not in one
    small_run(results, 2, when="2026-11-26T10:00:00")
    assert main(["report", "--output", str(tmp_path / "two.html")]) == 0
    two = (tmp_path / "two.html").read_text()
    assert "one run so far" not in two and 'id="figure-history' in two


def test_tables_fit_their_section(results, tmp_path, browser):
    """No table scrolls sideways, runs past its section or lies under a figure, on a laptop's screen or a desktop's."""
    full_run(results, 1)
    small_run(results, 2, when="2026-11-26T10:00:00")
    for run in ("1", "2"):
        assert main(["report", run, "--output", str(tmp_path / f"{run}.html")]) == 0
    with browser(1280) as (tab, errors, blocked):
        for run in ("1", "2"):
            for width in (1280, 1920):
                tab.set_viewport_size({"width": width, "height": 900})
                tab.goto((tmp_path / f"{run}.html").as_uri(), wait_until="load")
                tab.wait_for_function(DRAWN)
                too_wide = tab.evaluate("""[...document.querySelectorAll('table')].filter(table =>
                    table.offsetWidth > table.parentElement.clientWidth
                    || table.getBoundingClientRect().right > table.closest('section').getBoundingClientRect().right)
                    .map(table => table.closest('section').id + ': ' + table.innerText.slice(0, 40))""")
                assert too_wide == [], (run, width)
                # A figure drawn wider than its place would lie over the table beside it.
                assert tab.evaluate("""[...document.querySelectorAll('.js-plotly-plot')].every(figure =>
                    figure.querySelector('.main-svg').getBoundingClientRect().width
                    <= figure.parentElement.getBoundingClientRect().width + 1)"""), (run, width)
        assert errors == [] and blocked == []


def test_load_comparisons_reads_records_and_skips_bad_ones(results):
    write_ab(results, "good", [("a[numpy-x-cpu-float64]", 1.10, "regression"),
                               ("b[torch-x-cpu-float64]", 0.98, "same")])
    (results / "ab" / "broken.json").write_text('{"backprop_bench_ab": 1, "benchmarks": [')
    write_ab(results, "unknown", [("a[numpy-x-cpu-float64]", 1.0, "maybe")])
    with pytest.warns(store.SkippedRun) as warned:
        frame = records.load_comparisons(results)
    assert sorted(str(w.message).split(":")[0] for w in warned) == [
        f"skipping {results / 'ab' / 'broken.json'}", f"skipping {results / 'ab' / 'unknown.json'}"]
    assert list(frame["benchmark"]) == ["a[numpy-x-cpu-float64]", "b[torch-x-cpu-float64]"]
    assert list(frame["verdict"]) == ["regression", "same"]
    assert frame["ratio"].tolist() == pytest.approx([1.10, 0.98])
    assert frame["baseline"].iloc[0] == "HEAD~1 (111111111111)"
    assert suite_runs.load_runs(results=results).empty  # ab records are not runs


@pytest.mark.parametrize("make, args, message", [
    (lambda results: None, [], "no saved runs"),
    (lambda results: write_run(results, 1, {}, calibration={"numpy": 1.0}), [], "holds no training benchmarks"),
    (lambda results: full_run(results, 1), ["--output", "{results}/box/page.html"], "lies among the saved runs"),
    (lambda results: full_run(results, 1), ["--output", "{results}/box/0001_abc_2026-11-25.json", "--force"],
     "is a saved run"),
    (lambda results: full_run(results, 1), ["--output", "{results}/nowhere/page.html"], "no such folder"),
    (lambda results: (full_run(results, 1), (results / "old.html").write_text("mine")),
     ["--output", "{results}/old.html"], "exists; pass --force"),
])
def test_bad_input_is_one_line_and_changes_nothing(results, make, args, message, capsys):
    make(results)
    (results / "box" / "corrupt.json").parent.mkdir(exist_ok=True)
    (results / "box" / "corrupt.json").write_text("{")
    before = snapshot(results)
    assert main(["report", *(arg.format(results=results) for arg in args)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and len([line for line in err if "error" in line]) == 1
    assert all("warning: skipping" in line for line in err[:-1])
    assert snapshot(results) == before


def test_default_output_and_force(results, tmp_path, capsys):
    full_run(results, 1)
    assert main(["report"]) == 0
    written = results / "pages" / "0001_abc_2026-11-25.html"
    assert f"wrote {written}" in capsys.readouterr().out
    assert main(["report"]) == 0  # the default page of a run is derived data: written again
    mine = tmp_path / "mine.html"
    mine.write_text("mine")
    assert main(["report", "--output", str(mine), "--force"]) == 0
    assert "plotly" in mine.read_text()


def test_unwritable_folder_is_one_line(results, tmp_path, capsys):
    full_run(results, 1)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes through folder modes; /sys refuses new files even to root
        locked = Path("/sys")
    assert main(["report", "--output", str(locked / "page.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write {locked / 'page.html'}" in err[0]


def test_overview_grids_what_autograd_costs(results, tmp_path):
    timings = {"seed-affine[torch-eager-cpu-float64]": [3e-3] * 5,
               "seed-affine[torch-handwritten-cpu-float64]": [1e-3] * 5,
               "seed-affine[jax-jit-loop-cpu-float64]": [2e-3] * 5,
               "seed-affine[jax-handwritten-cpu-float64]": [2.5e-3] * 5,
               "seed-affine[numpy-handwritten-cpu-float64]": [1e-3] * 5}
    extra = {"seed-affine[torch-eager-cpu-float64]": {"handwritten": "handwritten"},
             "seed-affine[jax-jit-loop-cpu-float64]": {"handwritten": "handwritten"}}
    write_run(results, 1, timings, extra=extra)
    assert main(["report", "--output", str(tmp_path / "page.html")]) == 0
    text = (tmp_path / "page.html").read_text()
    grid = text.split('<h3 id="autograd">What autograd costs</h3>')[1].split("</section>")[0]
    cells = re.findall(r'data-workload="seed-affine" data-column="([^"]+)"[^>]*>([0-9.]+x)', grid)
    assert cells == [("torch-eager-cpu", "3.00x"), ("jax-jit-loop-cpu", "0.80x")]
    write_run(results, 2, {name: t for name, t in timings.items() if "handwritten" not in name},
              when="2026-11-26T10:00:00")  # no twin: no grid, and a line that says why
    assert main(["report", "2", "--output", str(tmp_path / "none.html")]) == 0
    assert "No run shown has an autograd variant beside its hand-written twin" in (tmp_path / "none.html").read_text()
