"""Mistakes a user can make give one clear error: a ValueError in the API, one line from the command."""

import subprocess
import sys

import numpy as np
import pytest

import backends
from backprop_bench.cli import main
from backprop_bench.model import ModelSpec, preset, synthetic_data

BAD_SPECS = [
    ({"layers": (1,)}, "at least an input and an output"),
    ({"layers": (1, 0, 1)}, "whole number >= 1"),
    ({"layers": (1, 2.5, 1)}, "whole number >= 1"),
    ({"epochs": 0}, "epochs must be"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"lr": float("inf")}, "lr must be a finite number > 0"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": -0.1}, "lr must be a finite number > 0"),
    ({"activation": "softmax"}, "unknown activation 'softmax'"),
    ({"dtype": "float16"}, "unknown dtype 'float16'"),
    ({"init": "orthogonal"}, "unknown init 'orthogonal'"),
]


@pytest.mark.parametrize("changes, message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_spec_is_a_value_error(changes, message):
    fields = {"layers": (1, 1, 1), **changes}
    with pytest.raises(ValueError, match=message):
        ModelSpec(**fields)


def test_bad_names_and_shapes_are_value_errors():
    spec = ModelSpec((1, 1, 1))
    data = preset("seed-affine").data
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown backend 'mxnet'"):
        backends.train(spec, data, "mxnet")
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        backends.train(spec, data, "numpy", "fast")
    with pytest.raises(ValueError, match="samples must be"):
        synthetic_data(spec, 0)
    with pytest.raises(ValueError, match=r"x has shape \(10, 2\).*need \(samples, 1\)"):
        backends.train(spec, synthetic_data(ModelSpec((2, 1)), 10), "numpy")
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        backends.train(spec, type(data)(data.x, data.y[:9]), "numpy")
    with pytest.raises(ValueError, match="b2 has shape"):
        backends.train(spec, data, "numpy", params={"W1": np.ones((1, 1)), "b1": np.ones(1),
                                                    "W2": np.ones((1, 1)), "b2": np.ones(2)})


@pytest.mark.parametrize("name", list(backends.BACKENDS))
def test_cuda_without_a_gpu_is_a_value_error(name):
    cls = backends.get(name) if backends.available()[name] is None else pytest.skip(f"{name} not installed")
    if "cuda" in cls.devices():
        pytest.skip("this machine has a GPU")
    with pytest.raises(backends.BackendUnavailable, match="device 'cuda' is not available"):
        backends.train(ModelSpec((1, 1, 1)), preset("seed-linear").data, name, device="cuda")


def test_torch_compile_without_a_cpp_compiler_is_unavailable_with_its_reason(monkeypatch, capsys):
    if backends.available()["torch"] is not None:
        pytest.skip("torch not installed")
    import backends.torch_backend as torch_backend

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(torch_backend.shutil, "which", lambda name: None)
    reasons = {(name, variant, device): reason for name, variant, device, reason in backends.cases()}
    assert "needs a C++ compiler" in reasons[("torch", "compile", "cpu")]
    assert reasons[("torch", "eager", "cpu")] is None
    with pytest.raises(backends.BackendUnavailable, match="needs a C\\+\\+ compiler"):
        backends.train(ModelSpec((1, 1, 1)), preset("seed-linear").data, "torch", "compile")
    assert main(["backends"]) == 0
    assert "compile on cpu: unavailable: torch.compile on the CPU needs a C++ compiler" in capsys.readouterr().out


def test_torch_cuda_graph_without_a_gpu_is_unavailable_with_its_reason(capsys):
    if backends.available()["torch"] is not None:
        pytest.skip("torch not installed")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the variant runs")
    reasons = {(name, variant, device): reason for name, variant, device, reason in backends.cases()}
    assert reasons[("torch", "cuda-graph", "cuda")] == "torch cuda-graph needs a CUDA GPU, and torch sees none here"
    assert ("torch", "cuda-graph", "cpu") not in reasons  # it never runs on the CPU, so it is no CPU case
    for device, message in [("cuda", "needs a CUDA GPU"), ("cpu", "runs on cuda only .*: choose device cuda")]:
        with pytest.raises(backends.BackendUnavailable, match=message):
            backends.train(ModelSpec((1, 1, 1)), preset("seed-linear").data, "torch", "cuda-graph", device)
    assert main(["backends"]) == 0
    assert "  cuda-graph on cuda: unavailable: torch cuda-graph needs a CUDA GPU" in capsys.readouterr().out


def test_divergence_names_the_epoch(backend):
    name, variant, device = backend
    chosen = preset("seed-affine")
    with pytest.raises(backends.TrainingDiverged, match=r"loss became (inf|nan) at epoch \d+"):
        backends.train(chosen.spec.with_(lr=1.0), chosen.data, name, variant, device)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "backprop_bench.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, message", [
    (["train", "--backend", "mxnet"], "unknown backend 'mxnet'"),
    (["train", "--model", "nope"], "unknown preset 'nope'"),
    (["train", "--layers", "1,x,1"], "--layers takes widths like 1,16,1"),
    (["train", "--layers", "1,0,1"], "whole number >= 1"),
    (["train", "--epochs", "0"], "epochs must be"),
    (["train", "--lr", "nan"], "lr must be a finite number > 0"),
    (["train", "--lr", "-1"], "lr must be a finite number > 0"),
    (["train", "--activation", "softmax"], "unknown activation"),
    (["train", "--dtype", "float16"], "unknown dtype"),
    (["train", "--layers", "2,4,1", "--samples", "0"], "samples must be"),
    (["train", "--device", "cuda"], "device 'cuda' is not available"),
    (["train", "--backend", "torch", "--variant", "cuda-graph"], "runs on cuda only"),
    (["train", "--model", "seed-linear", "--layers", "1,1"], "either --model or --layers"),
    (["train", "--data", "/nonexistent.npz"], "cannot read /nonexistent.npz"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_cli_errors_are_one_line(args, message):
    done = run_cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_cli_reports_a_bad_data_file(tmp_path):
    wrong_width = tmp_path / "wide.npz"
    np.savez(wrong_width, x=np.ones((5, 3)), y=np.ones((5, 1)))
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, x=np.ones((5, 1)))
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a zip")
    for path, message in [(wrong_width, "x has shape (5, 3)"), (no_y, "lacks the array(s) y"),
                          (garbage, "cannot read")]:
        done = run_cli("train", "--data", str(path))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert message in done.stderr, done.stderr


def test_cli_reports_divergence():
    done = run_cli("train", "--model", "seed-affine", "--lr", "1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "training diverged" in done.stderr and "epoch" in done.stderr
