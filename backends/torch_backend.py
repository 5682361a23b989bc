"""PyTorch autograd, on the CPU or a CUDA GPU, and the hand-written gradients without it.

Four variants: `eager` runs the forward op by op, lets autograd build the backward,
and updates the weights in place under no_grad with one fused foreach op, as
torch.optim.SGD(foreach=True) does; `handwritten` is eager with the gradients of
backends/handwritten.py instead of autograd's, and nothing else changed, so the two
differ by what autograd costs; `compile` compiles one whole epoch; `cuda-graph`
records eager's whole training once as a CUDA graph and replays it with one launch.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import torch

from backprop_bench.backends import handwritten
from backprop_bench.backends.base import Backend, Framework, TrainResult
from backprop_bench.model import Dataset, Params

ACTIVATIONS = {"identity": None, "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}

# Trap: on Ampere and newer GPUs float32 matrix products may run in TF32 (10-bit
# mantissa) when allowed. The backends must compute the same thing, so keep it off.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def forward(params: list[torch.Tensor], x: torch.Tensor, bias: bool, activation: str) -> torch.Tensor:
    sigma = ACTIVATIONS[activation]
    layers = list(zip(params[0::2], params[1::2])) if bias else [(W, None) for W in params]
    a = x
    for l, (W, b) in enumerate(layers):
        a = a @ W if b is None else torch.addmm(b, a, W)
        if sigma is not None and l < len(layers) - 1:
            a = sigma(a)
    return a


def mse(params, x, y, bias: bool, activation: str) -> torch.Tensor:
    return torch.nn.functional.mse_loss(forward(params, x, bias, activation), y)


class TorchEager(Backend):
    name = "torch"
    variant = "eager"
    supports = ("cpu", "cuda")
    handwritten = "handwritten"
    autograd = True  # whether the parameters record autograd's graph (compile's torch.func and handwritten: no)

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]

    def load(self, params: Params, data: Dataset):
        device = torch.device(self.device)
        # torch.tensor keeps the NumPy dtype (float64 stays float64); a bare Python
        # float would become float32, so nothing here starts from one.
        tensors = [torch.tensor(p, device=device, requires_grad=self.autograd) for p in params.values()]
        x, y = (torch.tensor(a, device=device) for a in (data.x, data.y))
        losses = torch.empty(self.spec.epochs, dtype=x.dtype, device=device)
        if self.device == "cuda":
            torch.cuda.synchronize()  # every copy done before the clock starts
        return tensors, x, y, losses

    def train_epochs(self, params, x, y, losses, epochs: int) -> None:
        """`epochs` epochs of gradient descent, queued on the device: no host sync anywhere."""
        spec = self.spec
        for epoch in range(epochs):
            loss = mse(params, x, y, spec.bias, spec.activation)
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                losses[epoch] = loss                               # stays on the device: no sync per epoch
                torch._foreach_add_(params, grads, alpha=-spec.lr)  # p ← p - lr ∂L/∂p

    def run(self, loaded):
        params, x, y, losses = loaded
        self.train_epochs(params, x, y, losses, self.spec.epochs)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return params, losses

    def fetch(self, trained) -> TrainResult:
        params, losses = trained
        values = {name: p.detach().cpu().numpy() for name, p in zip(self.spec.param_names(), params)}
        return TrainResult(values, losses.cpu().numpy().astype(np.float64))


class TorchHandwritten(TorchEager):
    """Eager, with the gradients written by hand (backends/handwritten.py) and no autograd at all.

    Everything else is eager's: the same tensors, the same forward ops, the same fused
    in-place update and loss history. The whole training runs under inference_mode, so
    torch records nothing for a backward and keeps no version counters.
    """

    variant = "handwritten"
    handwritten = None
    autograd = False

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        if reason := handwritten.missing():
            return reason
        return super().unavailable(device)


    def train_epochs(self, params, x, y, losses, epochs: int) -> None:
        spec = self.spec
        xp = handwritten.namespace(x)
        weights, biases = (params[0::2], params[1::2]) if spec.bias else (params, [])
        with torch.inference_mode():
            for epoch in range(epochs):
                losses[epoch], dW, db = handwritten.loss_and_gradients(xp, x, y, weights, biases, spec.activation)
                grads = [g for pair in zip(dW, db) for g in pair] if spec.bias else dW  # params' order
                torch._foreach_add_(params, grads, alpha=-spec.lr)                    # p ← p - lr ∂L/∂p


class TorchCompile(TorchEager):
    """The whole epoch (forward, backward by torch.func, update) compiled into one graph."""

    variant = "compile"
    handwritten = None
    autograd = False
    compiles_in = "run"  # torch.compile compiles lazily, on the first call of each shape
    opt_in = True  # it compiles for minutes: the suite runs it with --with-compile only

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        # Inductor writes C++ for the CPU and builds it with the system's compiler.
        if device == "cpu" and not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")):
            return "torch.compile on the CPU needs a C++ compiler: install g++ or clang++, or set CXX"
        return super().unavailable(device)

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        loss_and_grad = torch.func.grad_and_value(mse)

        def step(params, x, y):
            grads, loss = loss_and_grad(params, x, y, spec.bias, spec.activation)
            return [p - spec.lr * g for p, g in zip(params, grads)], loss

        # Each spec is one more specialization of this same `step` code; a suite trains
        # dozens of specs in one process, past dynamo's default limit of 8 per code object.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
        # dynamic=False: each workload gets kernels for its own shapes, compiled (and timed
        # as compile_s) on its own, rather than reusing a shape-generic graph after the
        # second shape, which would make compile time depend on what ran before.
        self._step = torch.compile(step, fullgraph=True, dynamic=False)


    def run(self, loaded):
        params, x, y, losses = loaded
        for epoch in range(self.spec.epochs):
            params, losses[epoch] = self._step(params, x, y)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return params, losses


class TorchGraph(TorchEager):
    """Eager's whole training, every epoch, recorded once as one CUDA graph; `run` launches it once.

    Why a CUDA graph captured by hand (torch.cuda.graph) rather than
    torch.compile(mode="reduce-overhead"): reduce-overhead graphs each compiled call,
    here one epoch, so a training would still cost one graph launch and a pass through
    its Python bookkeeping per epoch, and its kernels would be Inductor's rather than
    eager's, so the variant would change two things at once. Recording the eager loop
    itself removes exactly the per-epoch launches: the kernels are eager's own, and the
    difference from `eager` is what launching them one by one from Python costs.

    The rules of capture, as PyTorch's CUDA graphs notes give them: the graph reads and
    writes fixed addresses, so parameters, data and the loss history are static tensors
    that `load` copies fresh values into, and the graph updates the parameters and writes
    each epoch's loss in place; the epochs are warmed up first on the stream that then
    captures (cuBLAS handles and workspaces, autograd's device thread, the allocator's
    blocks all exist before capture); nothing inside asks the host to wait. Memory freed
    during capture is reused by the capture, so one epoch's worth of intermediates serves
    all epochs; the graph itself grows with the number of epochs (tens of nodes each).
    Capturing happens in the first `load` for a data shape, so it lands in compile_s.
    """

    variant = "cuda-graph"
    supports = ("cuda",)
    handwritten = None
    WARMUP_EPOCHS = 3

    @classmethod
    def unavailable(cls, device: str) -> str | None:
        if device != "cuda":
            return (f"torch cuda-graph runs on cuda only (a CUDA graph records GPU kernels), not {device}: "
                    "choose device cuda")
        if not torch.cuda.is_available():
            return "torch cuda-graph needs a CUDA GPU, and torch sees none here"
        return None

    def __init__(self, spec, device="cuda"):
        super().__init__(spec, device)
        self._captured = {}  # (x shape, y shape) -> (graph, params, x, y, losses): the graph and its static tensors

    def capture(self, params, x, y, losses) -> torch.cuda.CUDAGraph:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.train_epochs(params, x, y, losses, min(self.WARMUP_EPOCHS, self.spec.epochs))
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            self.train_epochs(params, x, y, losses, self.spec.epochs)
        return graph

    def load(self, params: Params, data: Dataset):
        key = (data.x.shape, data.y.shape)
        if key not in self._captured:
            static = super().load(params, data)
            self._captured[key] = (self.capture(*static), *static)
        graph, static_params, x, y, losses = self._captured[key]
        with torch.no_grad():  # fresh values into the graph's fixed addresses; the warm-up changed them
            for static, fresh in zip((*static_params, x, y), (*params.values(), data.x, data.y)):
                static.copy_(torch.tensor(fresh))
        torch.cuda.synchronize()
        return self._captured[key]

    def run(self, loaded):
        graph, params, _, _, losses = loaded
        graph.replay()
        torch.cuda.synchronize()
        return params, losses


class Torch(Framework):
    name = "torch"
    packages = ("torch",)
    queues_work = True
    cuda_stream = True

    @classmethod
    def machine_info(cls) -> dict:
        info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
        return info

    @classmethod
    def matmul(cls, device, a, b):
        a, b = (torch.from_numpy(operand).to(device) for operand in (a, b))
        if device == "cuda":
            return lambda: (a @ b, torch.cuda.synchronize())
        return lambda: a @ b

    @classmethod
    def cuda_peak_bytes(cls, run) -> int:
        """Since the process started: the cuda-graph variant takes its memory while it is captured (in the
        warm-up, the same training), not while it replays."""
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before


FRAMEWORK = Torch
VARIANTS = {"eager": TorchEager, "handwritten": TorchHandwritten, "compile": TorchCompile, "cuda-graph": TorchGraph}
