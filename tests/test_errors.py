"""Mistakes a user can make give one clear error: a UserError in the API, one line from the command."""

import io
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from backprop_bench import backends
from backprop_bench.cli import main
from backprop_bench.model import ModelSpec, init_params, preset, synthetic_data
from backprop_bench.timing import Training
from tests.signals import popen_as_from_a_terminal

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
    from backprop_bench.backends import torch_backend

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
    (["train", "--data", "/nonexistent.npz"], "cannot read /nonexistent.npz: no such file; --data takes a .npz"),
    (["train", "--data", "/dev/zero"], "cannot read /dev/zero: not a regular file; --data takes a .npz"),
    (["train", "--data", "/tmp", "--layers", "1,1"], "cannot read /tmp: not a regular file"),
    (["train", "--model", "seed-affine", "--layers", "2,1"], "x has shape (10, 1), but layers 2-1 need (samples, 2)"),
    # Sizes refused before anything is allocated, on any machine of under 10 TB.
    (["train", "--layers", "100000,100000,1", "--samples", "1000000000"], "need at least"),
    (["train", "--layers", "1,100000000,1", "--samples", "100000"], "more than this machine's"),
    (["train", "--layers", "2,4,1", "--samples", "1000000000000"], "use fewer samples, narrower layers or fewer"),
    (["train", "--epochs", "1000000000000"], "for 1000000000000 epochs need at least 1.6e+04 GB"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_cli_errors_are_one_line(args, message):
    done = run_cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def huge_header_npz(path):
    """A .npz whose headers claim 10^12 rows it does not hold."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 1)})
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("x", "y"):
            archive.writestr(f"{name}.npy", header.getvalue())


def bad_data_files(folder):
    """(file, message): every kind of --data file that must be refused in one line."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1))
    np.savez(folder / "good.npz", x=x, y=2 * x)
    good = (folder / "good.npz").read_bytes()
    files = {
        "wide.npz": (lambda p: np.savez(p, x=np.ones((5, 3)), y=np.ones((5, 1))), "x has shape (5, 3)"),
        "no_y.npz": (lambda p: np.savez(p, x=np.ones((5, 1))), "lacks the array(s) y"),
        "garbage.npz": (lambda p: p.write_text("not a zip"), "not a .npz, or a truncated one"),
        "data.csv": (lambda p: np.savetxt(p, np.hstack([x, x]), delimiter=","), "for CSV or text, np.loadtxt"),
        "truncated.npz": (lambda p: p.write_bytes(good[:len(good) // 2]), "not a .npz, or a truncated one"),
        "one.npy": (lambda p: np.save(p, x), "--data takes a .npz of 2-D numeric arrays x and y"),
        "dates.npz": (lambda p: np.savez(p, x=np.array([["2020-01-01"]] * 5, "datetime64[D]"), y=np.ones((5, 1))),
                      "x holds datetime64[D] values, not numbers"),
        "objects.npz": (lambda p: np.savez(p, x=np.array([[1, None]], object), y=np.ones((1, 1))),
                        "x holds object values, not numbers"),
        "flat.npz": (lambda p: np.savez(p, x=np.ones(5), y=np.ones((5, 1))), "x has shape (5,)"),
        "huge.npz": (huge_header_npz, "on 1000000000000 samples for 1000 epochs need at least"),
    }
    for name, (write, message) in files.items():
        write(folder / name)
        yield folder / name, message


def test_cli_reports_a_bad_data_file(tmp_path):
    for path, message in bad_data_files(tmp_path):
        args = ("--layers", "1,1,1") if path.name == "wide.npz" else ()
        done = run_cli("train", "--data", str(path), *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
        assert "pickle" not in done.stderr


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("CUDA out of memory. Tried to allocate 7.45 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried to ..."),
    RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8000000000 bytes."),
], ids=["MemoryError", "torch-cuda", "torch-cpu", "jax"])
def test_out_of_memory_is_one_line(monkeypatch, capsys, error):
    def fail(self):
        raise error

    monkeypatch.setattr(Training, "time_once", fail)
    assert main(["train", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("backprop-bench: error: out of memory") and len(err.splitlines()) == 1
    assert err.rstrip().endswith("use fewer samples, narrower layers or fewer epochs")


def test_other_runtime_errors_are_not_called_out_of_memory(monkeypatch):
    def fail(self):
        raise RuntimeError("something else")

    monkeypatch.setattr(Training, "time_once", fail)
    with pytest.raises(RuntimeError, match="something else"):
        main(["train", "--epochs", "2"])


def test_ctrl_c_during_train_is_one_line():
    done = popen_as_from_a_terminal([sys.executable, "-m", "backprop_bench.cli", "train", "--epochs", "100000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5)  # past the imports, into the training
    done.send_signal(signal.SIGINT)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 130 and err == "backprop-bench: interrupted\n"


def test_jax_step_keeps_its_losses_in_one_preallocated_array():
    if backends.available()["jax"] is not None:
        pytest.skip("jax not installed")
    import jax

    spec = preset("seed-affine").spec.with_(epochs=7)
    trainer = backends.get("jax", "jit-step")(spec)
    _, (state, _, _) = loaded = trainer.load(init_params(spec), preset("seed-affine").data.as_dtype(spec.dtype))
    assert state[1].shape == (7,)  # on the device before the timed call
    _, losses = trainer.run(loaded)
    assert isinstance(losses, jax.Array) and losses.shape == (7,)


def test_cli_reports_divergence():
    done = run_cli("train", "--model", "seed-affine", "--lr", "1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "training diverged" in done.stderr and "epoch" in done.stderr


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    from backprop_bench import compare
    from backprop_bench.errors import UserError
    from tests.runs import write_run

    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "results", 1, {"seed-affine[numpy-handwritten-cpu-float64]": [1e-2] * 5})
    with pytest.raises(UserError):  # the API raises; every user error is one type
        ModelSpec(layers=(1,))
    monkeypatch.setattr(compare, "comparison", lambda *_: (_ for _ in ()).throw(UserError("a mistake, and its fix")))
    assert main(["compare"]) == 2
    assert capsys.readouterr().err == "backprop-bench: error: a mistake, and its fix\n"
    # A ValueError that is no user's mistake (here, as if from inside pandas) is a bug: it is not hidden.
    monkeypatch.setattr(compare, "comparison", lambda *_: (_ for _ in ()).throw(ValueError("cannot reindex")))
    with pytest.raises(ValueError, match="cannot reindex"):
        main(["compare"])
