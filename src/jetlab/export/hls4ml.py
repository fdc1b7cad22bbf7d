"""hls4ml export: the tagger as HLS C++ with fixed-point arithmetic, emulated bit-exactly on CPU.

hls4ml (Duarte et al., arXiv:1804.06913) turns a network into a High-Level-Synthesis
project for FPGAs where every weight, activation and sum is an ``ap_fixed<W,I>`` number:
``W`` bits in all, ``I`` of them (sign included) before the binary point, so values are
multiples of ``2^-(W-I)`` in ``[-2^(I-1), 2^(I-1))``, truncated towards -inf and wrapped
on overflow (the defaults). :func:`export_hls4ml` writes the project, compiles its C++
emulation library with g++ (hls4ml's ``compile()``), runs it on the run's test split and
compares the fixed-point class probabilities with PyTorch's float ones.

Supported taggers (hls4ml 1.3's PyTorch converter handles Linear, Conv, pooling and
elementwise activations; :func:`hls_sequential` rewrites the tagger as such a
``nn.Sequential`` ending in ``Softmax``, sharing its weights):

* ``dnn``: ``Linear, act, ..., Linear, Softmax``, ``io_parallel`` (the paper's design);
* ``cnn``: ``(Conv2d, act, MaxPool2d(2)) x L, Flatten, Linear, act, Linear, Softmax``,
  ``io_stream`` (a 100 x 100 image does not fit a fully parallel design); inputs stay
  channels-first, hls4ml transposes them.

Not supported (:data:`UNSUPPORTED` gives the reason the command prints): JEDI-net, GarNet,
GRU, ParticleNet (k-NN graph: top-k and gather), ParT (attention). Activations: relu, elu, leaky_relu, tanh, sigmoid, identity (no SELU/GELU in hls4ml).

Where the error comes from: hls4ml's softmax is lookup tables with its own 18-bit types,
whatever the model precision. Its default ``inv_inp_t = ap_fixed<18,8>`` indexes the
1024-entry inverse table with the top 10 bits of ``Σ exp``, i.e. in steps of 1/4, so a
confident jet can come out as ``[1.0, 0.18, ...]`` where float says ``[0.82, 0.14, ...]``.
On a 16-16-... DNN trained on 1,400 jets that was the largest difference (0.18) at
``ap_fixed<16,6>``, while the float softmax of the fixed-point logits differed by 0.02;
argmax and AUC barely move (99 % same argmax, mean AUC 0.865 vs 0.866).

DSP proxy: without synthesis tools the FPGA cost is estimated by the multiplications of
the design. A multiplication by a zero weight is removed by synthesis, so
``nonzero_weights`` (sum of non-zero weights of the Linear/Conv layers, i.e. multipliers
at reuse factor 1) is the DSP proxy; ``multiplications_per_jet`` counts every non-zero
multiplication of one inference (a conv kernel weight once per output pixel).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jetlab.errors import JetlabError
from jetlab.export._optional import import_optional
from jetlab.export.inputs import batched_probabilities
from jetlab.models import CNNTagger, DNNTagger

__all__ = [
    "DEFAULT_PRECISION",
    "UNSUPPORTED",
    "HLSBuild",
    "build_hls_model",
    "check_precision",
    "hls_probabilities",
    "hls_sequential",
    "multiplication_counts",
    "scan_precisions",
]

log = logging.getLogger(__name__)

DEFAULT_PRECISION = "ap_fixed<16,6>"
BACKEND = "Vitis"

#: activation name -> the nn module hls4ml's PyTorch converter knows
HLS_ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": functools.partial(nn.LeakyReLU, 0.01),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": None,
}

#: taggers without an hls4ml form, and why
UNSUPPORTED = {
    "jedinet": "JEDI-net's interaction step (an MLP on all N(N-1) particle pairs, summed per receiving particle) "
               "has no layer in hls4ml's PyTorch converter (FPGA JEDI-nets are hand-written HLS); use --format onnx",
    "jedinet-sumo": "JEDI-net's interaction step (an MLP on all N(N-1) particle pairs, summed per receiving particle) "
                    "has no layer in hls4ml's PyTorch converter (FPGA JEDI-nets are hand-written HLS); use --format onnx",
    "garnet": "GarNet's masked, exp(-d^2)-weighted mean/max aggregation is not in hls4ml's PyTorch converter "
              "(hls4ml has GarNet for Keras models only); use --format onnx",
    "gru": "the GRU stops at each jet's last real particle (variable length); hls4ml's GRU runs a fixed number "
           "of steps and has no masking; use --format onnx",
}
_PARTICLENET = ("ParticleNet's k-nearest-neighbour graph (pairwise distances, top-k, gather of the neighbours) "
                "has no layer in hls4ml's PyTorch converter; use --format onnx")
_PART = ("ParT's multi-head attention with a pair-feature bias (softmax over particles, logs of pair "
         "kinematics) has no layer in hls4ml's PyTorch converter; use --format onnx")
UNSUPPORTED["jedinet-linear"] = ("JEDI-linear's masked sums over the particles (of every sender's message and of "
                                 "every particle's output) are not layers of hls4ml's PyTorch converter; use --format onnx")
UNSUPPORTED.update({"particlenet": _PARTICLENET, "particlenet-lite": _PARTICLENET, "part": _PART, "part-small": _PART})


# ---------------------------------------------------------------------------- the model as layers
def _activation(model_name: str, name: str) -> list[nn.Module]:
    if name not in HLS_ACTIVATIONS:
        supported = ", ".join(HLS_ACTIVATIONS)
        raise JetlabError(f"{model_name}: activation {name!r} has no hls4ml PyTorch equivalent (supported: {supported})")
    factory = HLS_ACTIVATIONS[name]
    return [] if factory is None else [factory()]


def hls_sequential(model: nn.Module) -> tuple[nn.Sequential, tuple[int, ...], str]:
    """``(Sequential computing softmax(model(x)), input shape without batch, hls4ml io_type)``.

    The Sequential holds the tagger's own Linear/Conv2d modules. Raises :class:`JetlabError`
    for a tagger or activation hls4ml cannot convert.
    """
    name = getattr(model, "name", type(model).__name__)
    if isinstance(model, DNNTagger):
        act = model.mlp.activation
        layers: list[nn.Module] = []
        for i, linear in enumerate(model.mlp.layers):
            layers.append(linear)
            if i < len(model.mlp.layers) - 1:
                layers += _activation(name, act)  # dropout is the identity at inference
        shape, io_type = (model.n_features,), "io_parallel"
    elif isinstance(model, CNNTagger):
        act = model.hparams["activation"]
        layers = []
        for conv in model.convs:
            layers += [conv, *_activation(name, act), nn.MaxPool2d(2)]
        layers.append(nn.Flatten())
        for i, linear in enumerate(model.head.layers):
            layers.append(linear)
            if i < len(model.head.layers) - 1:
                layers += _activation(name, model.head.activation)
        shape, io_type = (1, model.image_size, model.image_size), "io_stream"
    else:
        reason = UNSUPPORTED.get(name, "no hls4ml form is known for this model; use --format onnx")
        raise JetlabError(f"{name} cannot be exported to hls4ml: {reason}")
    return nn.Sequential(*layers, nn.Softmax(dim=-1)).eval(), shape, io_type


def multiplication_counts(seq: nn.Sequential, input_shape: Sequence[int]) -> list[dict]:
    """Per Linear/Conv layer: ``weights``, ``nonzero_weights`` (the DSP proxy) and
    ``multiplications_per_jet`` (non-zero weight x output positions)."""
    positions: dict[int, int] = {}

    def hook(module, _inputs, output):
        positions[id(module)] = int(np.prod(output.shape[2:])) if isinstance(module, nn.Conv2d) else 1

    layers = [(i, m) for i, m in enumerate(seq) if isinstance(m, (nn.Linear, nn.Conv2d))]
    handles = [m.register_forward_hook(hook) for _, m in layers]
    try:
        with torch.no_grad():
            seq(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    counts = []
    for i, m in layers:
        nonzero = int(torch.count_nonzero(m.weight))
        counts.append({"layer": i, "type": type(m).__name__, "weights": m.weight.numel(), "nonzero_weights": nonzero,
                       "multiplications_per_jet": nonzero * positions[id(m)]})
    return counts


# ---------------------------------------------------------------------------- precision strings
_AP_PATTERN = re.compile(r"^\s*(?P<head>[A-Za-z_]+)\s*<\s*(?P<width>\d+)\s*,\s*(?P<integer>-?\d+)\s*(?P<rest>(,.*)?)>\s*$")


def check_precision(precision: str):
    """hls4ml's parsed type of ``precision``; :class:`JetlabError` if hls4ml rejects it or it is
    not an ``ap_`` fixed-point/integer type (the Vitis backend's C++ types)."""
    import_optional("hls4ml", "hls4ml export")
    from hls4ml.backends import get_backend
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

    try:
        parsed = get_backend(BACKEND).convert_precision_string(str(precision))
    except Exception as exc:  # hls4ml raises ValueError, IndexError, AttributeError on bad strings
        raise JetlabError(f"precision {precision!r} rejected by hls4ml ({type(exc).__name__}: {exc}); "
                          f"expected e.g. {DEFAULT_PRECISION}") from None
    if not isinstance(parsed, (FixedPrecisionType, IntegerPrecisionType)) or str(precision).strip().startswith("ac_"):
        raise JetlabError(f"precision {precision!r}: expected an ap_fixed<W,I>, ap_ufixed<W,I> or ap_int<W> type")
    if parsed.width < 1:
        raise JetlabError(f"precision {precision!r}: the total width must be at least 1 bit")
    return parsed


def scan_precisions(precision: str, widths: Sequence[int]) -> list[str]:
    """``precision`` with its total width replaced by each of ``widths`` (integer bits and
    rounding/saturation modes kept): ``ap_fixed<16,6>``, (8, 10) -> ``ap_fixed<8,6>``, ``ap_fixed<10,6>``."""
    match = _AP_PATTERN.match(str(precision))
    if not match:
        raise JetlabError(f"--scan-precision needs a precision of the form ap_fixed<W,I>, got {precision!r}")
    return [f"{match['head']}<{w},{match['integer']}{match['rest']}>" for w in widths]


# ---------------------------------------------------------------------------- build and run
class HLSBuild:
    """A converted and compiled hls4ml model: ``model`` (hls4ml ModelGraph), ``directory``,
    ``log`` (converter and compiler output) and ``warnings`` (hls4ml's, one line each)."""

    def __init__(self, model, directory: Path, log_text: str, warning_lines: list[str]):
        self.model, self.directory, self.log, self.warnings = model, directory, log_text, warning_lines


def build_hls_model(seq: nn.Sequential, input_shape: Sequence[int], precision: str, io_type: str,
                    directory: str | os.PathLike, project: str = "jetlab_tagger") -> HLSBuild:
    """Convert ``seq`` at ``precision`` into an hls4ml project in ``directory`` and compile its
    C++ emulation (g++, tens of seconds). Raises :class:`JetlabError` when either step fails."""
    hls4ml = import_optional("hls4ml", "hls4ml export")
    check_precision(precision)
    directory = Path(directory)
    chatter = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(chatter):
        warnings.simplefilter("always")
        try:
            config = hls4ml.utils.config_from_pytorch_model(
                seq, input_shape=tuple(input_shape), granularity="model", default_precision=precision, backend=BACKEND)
            model = hls4ml.converters.convert_from_pytorch_model(
                seq, hls_config=config, output_dir=str(directory), project_name=project, backend=BACKEND,
                io_type=io_type)
        except Exception as exc:  # hls4ml raises bare Exception for unsupported layers
            raise JetlabError(f"hls4ml cannot convert the model: {str(exc).strip().splitlines()[0]}") from None
        try:
            model.compile()
        except Exception:
            log_path = directory / "compile.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(chatter.getvalue())
            raise JetlabError(f"g++ could not compile the hls4ml project for {precision} (output in {log_path})") from None
    lines = sorted({str(w.message).strip().splitlines()[0] for w in caught})
    return HLSBuild(model, directory, chatter.getvalue(), lines)


def hls_probabilities(build: HLSBuild, x: torch.Tensor, *, chunk: int = 256, desc: str | None = None) -> np.ndarray:
    """The compiled fixed-point model's outputs (softmax probabilities) for ``x`` (N, ...): (N, C) float64."""
    def run(batch: torch.Tensor) -> np.ndarray:
        y = build.model.predict(np.ascontiguousarray(batch.numpy(), dtype=np.float32))
        return np.asarray(y).reshape(len(batch), -1)

    return batched_probabilities(run, {"x": x}, ("x",), batch_size=chunk, progress_desc=desc)
