"""`backprop-bench train` prints the notebook's report, or one JSON object."""

import json
import time

import numpy as np
import pytest

from backprop_bench.cli import main
from backprop_bench.model import init_params, preset
from tests.golden import PRINTOUT


def train(capsys, *args):
    assert main(["train", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", ["seed-linear", "seed-affine"])
def test_printout_is_the_notebooks(capsys, backend, name):
    """Between a line naming what ran and the final loss and time, the notebook's printout, line for line."""
    backend_name, variant, device = backend
    out = train(capsys, "--model", name, "--backend", backend_name, "--variant", variant, "--device", device)
    header, *lines = out.splitlines()
    expected_lines = PRINTOUT[name].splitlines()
    notebook, after = lines[:len(expected_lines)], lines[len(expected_lines):]
    assert header.startswith(f"{backend_name} {variant} on {device}, float64: layers 1-1-1, identity, ")
    assert header.endswith("init notebook, lr 0.01, 1000 epochs, 10 samples")
    assert after[:2] == ["", f"Final loss: {FINAL_LOSS[name]} (epoch 999)"]
    assert after[2].startswith("Time: ") and " per epoch (steady state), first training " in after[2]
    for printed, expected in zip(notebook, expected_lines, strict=True):
        if " | b" in expected:  # biases print all 17 digits; see test_notebook for why only 13 must agree
            (w, b), (w_expected, b_expected) = printed.split(" | "), expected.split(" | ")
            assert w == w_expected
            assert float(b.split(": ")[1]) == pytest.approx(float(b_expected.split(": ")[1]), rel=1e-13)
        else:
            assert printed == expected


# The loss before the last update: seed-linear's two-step cycle (see README) ends on its odd phase.
FINAL_LOSS = {"seed-linear": "17.8151", "seed-affine": "0.6167"}


def test_json_has_every_field(capsys, backend):
    backend_name, variant, device = backend
    out = train(capsys, "--model", "seed-affine", "--backend", backend_name, "--variant", variant,
                "--device", device, "--epochs", "5", "--json")
    report = json.loads(out)
    assert (report["backend"], report["variant"], report["device"], report["dtype"]) == (
        backend_name, variant, device, "float64")
    assert list(report["params"]) == ["W1", "b1", "W2", "b2"]
    assert np.shape(report["params"]["W1"]) == (1, 1) and np.shape(report["params"]["b1"]) == (1,)
    spec = preset("seed-affine").spec.with_(epochs=5)
    assert report["params_init"] == {k: v.tolist() for k, v in init_params(spec).items()}
    assert len(report["losses"]) == 5 and report["losses"][0] == pytest.approx(162.8282, abs=5e-5)
    assert report["time_per_epoch_s"] > 0 and report["first_call_s"] > 0 and report["error"] is None
    assert report["samples"] == 10


def test_the_first_training_counts_its_set_up(capsys, monkeypatch):
    """JAX compiles while loading, before the call: the first training's time must hold the set-up."""
    from backprop_bench.timing import Training

    fresh = Training.fresh
    loads = []

    def slow_first_load(self):
        loads.append(1)
        if len(loads) == 1:
            time.sleep(0.25)  # a stand-in for compiling, as JAX does here
        return fresh(self)

    monkeypatch.setattr(Training, "fresh", slow_first_load)
    report = json.loads(train(capsys, "--model", "seed-affine", "--epochs", "5", "--json"))
    assert report["first_call_s"] >= 0.25 > report["time_per_epoch_s"] * 5


def test_custom_layers_and_user_data(capsys, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    np.savez(tmp_path / "d.npz", x=x, y=x @ np.ones((3, 2)))
    report = json.loads(train(capsys, "--layers", "3,8,2", "--activation", "tanh", "--init", "xavier",
                              "--data", str(tmp_path / "d.npz"), "--epochs", "300", "--lr", "0.05",
                              "--dtype", "float32", "--json"))
    assert report["dtype"] == "float32" and np.shape(report["params"]["W2"]) == (8, 2)
    assert report["losses"][-1] < 0.1 * report["losses"][0]


def test_log_every_and_synthetic_samples(capsys):
    out = train(capsys, "--layers", "2,4,1", "--samples", "7", "--epochs", "30", "--log-every", "10")
    assert [line.split(",")[0] for line in out.splitlines() if line.startswith("Epoch")] == [
        "Epoch 0", "Epoch 10", "Epoch 20"]
    assert "W2:" in out and "Prediction:" in out and "y True:" in out
    assert "\nFinal loss: " in out and "(epoch 29)" in out  # the last epoch, though not a logged one


def test_a_wide_network_prints_one_line_per_array(capsys):
    out = train(capsys, "--layers", "3,128,128,1", "--activation", "relu", "--samples", "256", "--epochs", "3")
    report = out[out.index("Final Params:"):]
    assert len(report.splitlines()) < 15
    assert "W2: (128, 128) float64 array: mean " in report and "(every number: --json)" in report
    assert "b3: " in report and "Prediction:\n (256, 1) float64 array" in report


@pytest.mark.parametrize("activation, init", [("relu", "he"), ("tanh", "xavier")])
def test_layers_default_to_an_init_made_for_them(capsys, activation, init):
    out = train(capsys, "--layers", "3,8,1", "--activation", activation, "--epochs", "3")
    assert f", bias, init {init} (the default for --layers), " in out.splitlines()[0]
    spec_init = json.loads(train(capsys, "--layers", "3,8,1", "--activation", activation, "--epochs", "3",
                                 "--json"))["spec"]["init"]
    assert spec_init == init


def test_large_arrays_are_summarized(capsys):
    out = train(capsys, "--layers", "3,32,32,1", "--samples", "500", "--epochs", "2")
    assert "(every number: --json)" in out and len(out.splitlines()) < 30


def test_a_preset_with_other_layers_keeps_its_settings_and_data(capsys):
    report = json.loads(train(capsys, "--model", "seed-affine", "--layers", "1,4,1", "--epochs", "3", "--json"))
    assert report["spec"]["layers"] == [1, 4, 1] and report["spec"]["init"] == "notebook"
    assert report["samples"] == 10 and report["losses"][0] > 100  # the notebook's y = 2x + 3 on 0..9


def test_data_sets_the_input_and_output_widths(capsys, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((20, 3)), y=rng.standard_normal((20, 2)))
    out = train(capsys, "--data", str(tmp_path / "d.npz"), "--epochs", "2")
    assert "layers 3-1-2 (input and output widths from --data), " in out.splitlines()[0]


def test_a_diverging_run_shows_what_it_computed(capsys):
    assert main(["train", "--model", "seed-affine", "--lr", "1"]) == 1
    out, err = capsys.readouterr()
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["Epoch 0", "Epoch 4"]
    assert err == "backprop-bench: training diverged: the loss became inf at epoch 5; try a smaller lr\n"
    assert main(["train", "--model", "seed-affine", "--lr", "1", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["error"].startswith("training diverged: the loss became inf at epoch 5")
    assert len(report["losses"]) == 5 and report["params"] is None and report["time_per_epoch_s"] > 0


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("backprop-bench ")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--variant VARIANT numpy: handwritten; torch: " in out
    assert "epochs of full-batch gradient descent (default 1000)" in out
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default 0.01)" in out and "(required)" in out


def test_backends_lists_every_backend(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("numpy: variants handwritten; devices cpu")
    assert "torch:" in out and "jax:" in out
