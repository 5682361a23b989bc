"""A benchmark's identity is typed data, saved field by field and read back from there; a run's layout is versioned."""

from __future__ import annotations

import json

import pytest

from backprop_bench import compare, store
from backprop_bench.errors import UserError
from backprop_bench.store import suite_runs
from backprop_bench.timing import BenchmarkId
from tests.runs import write_run


def test_an_identity_names_its_benchmark_and_its_grid_column():
    identity = BenchmarkId("seed-linear", "torch", "eager", "cuda", "float32")
    assert identity.name == "seed-linear[torch-eager-cuda-float32]"
    assert identity.case == "torch-eager-cuda"
    assert identity.fields() == {"workload": "seed-linear", "backend": "torch", "variant": "eager",
                                 "device": "cuda", "dtype": "float32"}


def test_the_comparison_reads_the_identity_from_extra_info_not_from_the_name(tmp_path):
    name = "seed-affine[numpy-handwritten-cpu-float64]"
    write_run(tmp_path, 1, {name: [0.01] * 5}, extra={name: {"variant": "renamed", "device": "gpu9"}})
    frame = suite_runs.load_runs(results=tmp_path)
    table = compare.comparison(frame, frame["run"].iloc[0])
    assert table[["case", "dtype", "name"]].values.tolist() == [
        ["numpy-renamed-gpu9", "float64", "numpy-renamed-gpu9-float64"]]


def test_a_training_benchmark_without_its_identity_is_refused_in_one_line(tmp_path):
    name = "seed-affine[numpy-handwritten-cpu-float64]"
    path = write_run(tmp_path, 1, {name: [0.01] * 5})
    run = json.loads(path.read_text())
    del run["benchmarks"][0]["extra_info"]["variant"]
    with pytest.raises(UserError, match="needs its identity in extra_info; it lacks variant"):
        suite_runs.validate(run)


def test_a_run_is_saved_with_its_schema_and_an_older_one_is_migrated_as_it_is_read(tmp_path):
    loop = "seed-affine[reference-c-loop-cpu-float64]"
    old = write_run(tmp_path, 1, {loop: [0.001] * 5},
                    extra={loop: {"backend": "reference-c-loop", "variant": "c-loop", "reference": True}})
    assert suite_runs.SCHEMA_KEY not in json.loads(old.read_text())  # as the suite saved runs before schema 2
    row = suite_runs.load_runs(results=tmp_path).iloc[0]
    assert (row["backend"], row["variant"]) == ("reference", "c-loop")

    saved = suite_runs.save_run(tmp_path / "box", "def_2026-12-04", json.loads(old.read_text()))
    assert json.loads(saved.read_text())[suite_runs.SCHEMA_KEY] == suite_runs.RUN_SCHEMA


@pytest.mark.parametrize("schema, says", [(suite_runs.RUN_SCHEMA + 1, "saved by a newer backprop-bench"),
                                          ("2", "not a schema version"), (0, "not a schema version")])
def test_a_run_of_an_unknown_schema_is_skipped_with_one_line(tmp_path, schema, says):
    path = write_run(tmp_path, 1, {"seed-affine[numpy-handwritten-cpu-float64]": [0.01] * 5})
    run = json.loads(path.read_text())
    path.write_text(json.dumps({**run, suite_runs.SCHEMA_KEY: schema}))
    with pytest.warns(store.SkippedRun, match=says):
        assert suite_runs.load_runs(results=tmp_path).empty
