"""Every backend trains to the NumPy backend's weights and losses, on architectures beyond the notebook."""

import numpy as np
import pytest

from backprop_bench import backends
from backprop_bench.model import ACTIVATIONS, TOLERANCES, ModelSpec, preset, synthetic_data
from tests.conftest import assert_close, check_close


def random_specs(count: int, seed: int = 2024) -> list[ModelSpec]:
    """Architectures nobody picked by hand: depth 1-4, widths 1-24, any activation and bias.

    Xavier or He init: the notebook's 0.01-scale weights leave a deep net's gradients
    vanishingly small, and a run that does not move compares nothing.
    """
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(count):
        layers = tuple(int(w) for w in rng.integers(1, 25, size=rng.integers(2, 6)))
        specs.append(ModelSpec(
            layers, bias=bool(rng.integers(2)), activation=str(rng.choice(ACTIVATIONS)),
            init=str(rng.choice(["xavier", "he"])), lr=0.05, seed=int(rng.integers(1000)),
        ))
    return specs


def spec_id(spec: ModelSpec) -> str:
    """e.g. '3-8-2-tanh-bias-notebook'."""
    return "-".join(spec.describe().split()[:-1] + [spec.init])


SPECS = [
    ModelSpec((3, 8, 2), activation="tanh", lr=0.05),
    ModelSpec((4, 16, 16, 3), activation="relu", init="he", lr=0.05),
    ModelSpec((2, 5, 7, 4, 1), activation="sigmoid", bias=False, init="xavier", lr=0.1),
    ModelSpec((5, 32, 1), activation="identity", lr=0.02),
    ModelSpec((1, 64, 64, 1), activation="tanh", init="xavier", lr=0.05),
    *random_specs(4),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("epochs", [1, 200])
@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_backend_matches_numpy(backend, spec, epochs, dtype):
    name, variant, device = backend
    spec = spec.with_(epochs=epochs, dtype=dtype)
    data = synthetic_data(spec, samples=32)
    expected = backends.train(spec, data, "numpy")
    result = backends.train(spec, data, name, variant, device)
    case = "-".join(backend)
    assert_close(result.params, expected.params, dtype, f"equivalence params, {epochs} ep", case)
    check_close(result.losses, expected.losses, TOLERANCES[dtype], f"equivalence losses, {epochs} ep", case, dtype)
    assert expected.losses[-1] < expected.losses[0] or epochs == 1  # the run learned something


@pytest.mark.parametrize("name", ["seed-linear", "seed-affine"])
def test_presets_in_float32_match_numpy(backend, name):
    """float32 all the way through: a float64 leak (a Python float made a tensor) would show here."""
    backend_name, variant, device = backend
    chosen = preset(name)
    spec = chosen.spec.with_(dtype="float32", epochs=100)
    expected = backends.train(spec, chosen.data, "numpy")
    result = backends.train(spec, chosen.data, backend_name, variant, device)
    assert_close(result.params, expected.params, "float32", "presets in float32", "-".join(backend))
