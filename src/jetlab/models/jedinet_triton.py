"""Fused Triton kernel for JEDI-net's edge sum: the pair grid never reaches global memory.

JEDI-net (Moreno et al., arXiv:1908.05318) spends its time in ``f_R`` over the ``N(N-1)``
ordered particle pairs of each jet. With the first layer of ``f_R`` split per particle
(see :mod:`jetlab.models.jedinet`), ``h_r = W_r o_r + b_1`` and ``h_s = W_s o_s``
(B, N, N¹), the quantity computed here is, for every jet ``b`` and receiver ``r``::

    a_0 = act(h_r + h_s)                         (N¹)        first layer, per pair
    a_1 = act(W_2 a_0 + b_2)                     (N¹/2)
    e_rs = act(W_3 a_1 + b_3)                    (D_E)       activation after the last layer too
    ē_r = Σ_s m_rs e_rs,   m_rs = mask_r mask_s [r != s]

Tiling (forward, :func:`_forward_kernel`): one program per (jet, tile of ``BLOCK_R``
receivers). It loads ``W_2ᵀ``, ``W_3ᵀ`` and the biases once (zero-padded to powers of two
≥ 16, so the padding contributes nothing), then walks the senders in tiles of
``BLOCK_S``: the ``BLOCK_R·BLOCK_S`` pairs of a tile form the rows of ``a_0``, both MLP
layers are two ``tl.dot`` s on registers, the masked rows are summed over the senders into
an fp32 accumulator ``(BLOCK_R, D_E)``. Only ``ē`` (B, N, D_E) is written. Each jet's
sender loop stops after its last real particle (trailing padding costs nothing).

Backward (:func:`_backward_kernel`) recomputes each pair tile (as the CPU
``_FusedEdgeSum`` does per receiver block) and runs the chain rule on it::

    g_2 = m_rs ∂L/∂ē_r ⊙ act'(z_2)   ∂W_3 += g_2ᵀ a_1   ∂b_3 += Σ g_2
    g_1 = (g_2 W_3) ⊙ act'(z_1)      ∂W_2 += g_1ᵀ a_0   ∂b_2 += Σ g_1
    g_0 = (g_1 W_2) ⊙ act'(h_r + h_s)   ∂h_r = Σ_s g_0 (registers),  ∂h_s = Σ_r g_0 (atomic add)

``act'`` is evaluated from the activation's output. One program handles one receiver tile
of the jets ``j, j + G, j + 2G, ...`` (``G`` about 8 programs per SM), so the per-program
weight-gradient partials, summed by torch afterwards, stay few. Memory is O(B·N·N¹) in
both passes: ``h_r``, ``h_s``, their gradients (``∂h_s`` accumulated in fp32) and ``ē``,
plus those partials (G·⌈N/BLOCK_R⌉ rows of the weights' size, independent of B).

Precision: fp32, bf16 or fp16 inputs; elementwise math and every accumulation in fp32;
the ``tl.dot`` operands are in the input dtype (bf16/fp16 tensor cores), fp32 products use
TF32 only when ``torch.backends.cuda.matmul.allow_tf32`` is on (as torch's matmuls do).

The kernels compile for CUDA. Under Triton's interpreter they run on CPU tensors, which is
how the tests check them against the dense oracle without a GPU: ``TRITON_INTERPRET=1`` must
be in the environment before Triton is first imported (it picks compiled or interpreted for
its own ``tl`` helpers then, and for these kernels when this module is imported). The
interpreter's ``tl.dot`` misreads bf16, so there the rounded operands are multiplied in fp32.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["INTERPRETED", "SUPPORTED_ACTIVATIONS", "SUPPORTED_DTYPES", "edge_sum", "tile_sizes", "unsupported"]

#: activation name -> the kernels' constexpr code
_ACTIVATION_CODES = {"identity": 0, "relu": 1, "elu": 2, "selu": 3, "leaky_relu": 4, "tanh": 5, "sigmoid": 6}
SUPPORTED_ACTIVATIONS = tuple(_ACTIVATION_CODES)
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
#: the kernels were decorated under TRITON_INTERPRET=1: they run on CPU tensors (slowly)
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@triton.jit
def _activate(x, ACT: tl.constexpr):
    if ACT == 1:
        y = tl.maximum(x, 0.0)
    elif ACT == 2:
        y = tl.where(x > 0, x, tl.exp(tl.minimum(x, 0.0)) - 1.0)
    elif ACT == 3:  # SELU: scale · ELU_alpha
        y = 1.0507009873554805 * tl.where(x > 0, x, 1.6732632423543772 * (tl.exp(tl.minimum(x, 0.0)) - 1.0))
    elif ACT == 4:
        y = tl.where(x > 0, x, 0.01 * x)
    elif ACT == 5:
        y = 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)
    elif ACT == 6:
        y = 1.0 / (1.0 + tl.exp(-x))
    else:
        y = x
    return y


@triton.jit
def _activate_backward(g, y, ACT: tl.constexpr):
    """``g · act'(x)`` from ``y = act(x)``."""
    if ACT == 1:
        d = tl.where(y > 0, g, 0.0)
    elif ACT == 2:
        d = tl.where(y > 0, g, g * (y + 1.0))
    elif ACT == 3:
        d = tl.where(y > 0, g * 1.0507009873554805, g * (y + 1.0507009873554805 * 1.6732632423543772))
    elif ACT == 4:
        d = tl.where(y > 0, g, 0.01 * g)
    elif ACT == 5:
        d = g * (1.0 - y * y)
    elif ACT == 6:
        d = g * y * (1.0 - y)
    else:
        d = g
    return d


@triton.jit
def _load_weights(w2_ptr, b2_ptr, w3_ptr, b3_ptr, H, H2, DE,
                  H_PAD: tl.constexpr, H2_PAD: tl.constexpr, DE_PAD: tl.constexpr):
    """Zero-padded ``W_2ᵀ`` (H_PAD, H2_PAD), ``b_2``, ``W_3ᵀ`` (H2_PAD, DE_PAD), ``b_3`` (fp32)."""
    kh, kh2, kde = tl.arange(0, H_PAD), tl.arange(0, H2_PAD), tl.arange(0, DE_PAD)
    w2t = tl.load(w2_ptr + kh2[None, :] * H + kh[:, None], mask=(kh[:, None] < H) & (kh2[None, :] < H2), other=0.0)
    w3t = tl.load(w3_ptr + kde[None, :] * H2 + kh2[:, None], mask=(kh2[:, None] < H2) & (kde[None, :] < DE), other=0.0)
    b2 = tl.load(b2_ptr + kh2, mask=kh2 < H2, other=0.0).to(tl.float32)
    b3 = tl.load(b3_ptr + kde, mask=kde < DE, other=0.0).to(tl.float32)
    return w2t, b2, w3t, b3


@triton.jit
def _load_particles(h_ptr, mask_ptr, row0, idx, N, H, H_PAD: tl.constexpr):
    """Rows ``idx`` of one jet (first row ``row0``): ``h`` (len(idx), H_PAD) fp32 and ``mask != 0``."""
    kh = tl.arange(0, H_PAD)
    h = tl.load(h_ptr + (row0 + idx)[:, None] * H + kh[None, :], mask=(idx[:, None] < N) & (kh[None, :] < H), other=0.0)
    real = tl.load(mask_ptr + row0 + idx, mask=idx < N, other=0.0) != 0
    return h.to(tl.float32), real


@triton.jit
def _dot(a, b, like, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """``a @ b`` (fp32) with both operands rounded to ``like`` 's dtype (the input dtype).

    ``UPCAST`` (the interpreter, whose ``dot`` misreads bf16) multiplies the rounded values
    in fp32: the same numbers, as bf16·bf16 products are exact in fp32.
    """
    a, b = a.to(like.dtype), b.to(like.dtype)
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _edge_mlp(h_r, h_s, w2t, b2, w3t, b3, ACT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
              BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr, H_PAD: tl.constexpr):
    """``a_0, a_1, e`` of the tile's ``BLOCK_R·BLOCK_S`` pairs (receiver-major rows), fp32."""
    pre = tl.reshape(h_r[:, None, :] + h_s[None, :, :], (BLOCK_R * BLOCK_S, H_PAD))
    a0 = _activate(pre, ACT)
    a1 = _activate(_dot(a0, w2t, w2t, PRECISION, UPCAST) + b2[None, :], ACT)
    e = _activate(_dot(a1, w3t, w3t, PRECISION, UPCAST) + b3[None, :], ACT)
    return a0, a1, e


@triton.jit
def _pair_tile(h_r, real_r, r, s0, h_s_ptr, mask_ptr, row0, N, H, w2t, b2, w3t, b3,
               ACT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
               BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr, H_PAD: tl.constexpr):
    """The senders ``s0 + [0, BLOCK_S)`` against the receivers ``r``: ``a_0, a_1, e`` of the pairs,
    the senders' indices and the pair mask ``m_rs`` (BLOCK_R, BLOCK_S)."""
    s = s0 + tl.arange(0, BLOCK_S)
    h_s, real_s = _load_particles(h_s_ptr, mask_ptr, row0, s, N, H, H_PAD)
    a0, a1, e = _edge_mlp(h_r, h_s, w2t, b2, w3t, b3, ACT, PRECISION, UPCAST, BLOCK_R, BLOCK_S, H_PAD)
    return a0, a1, e, s, real_r[:, None] & real_s[None, :] & (r[:, None] != s[None, :])


@triton.jit
def _forward_kernel(h_r_ptr, h_s_ptr, mask_ptr, length_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, out_ptr,
                    N, H, H2, DE, ACT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                    BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr,
                    H_PAD: tl.constexpr, H2_PAD: tl.constexpr, DE_PAD: tl.constexpr):
    """Grid (B, ⌈N / BLOCK_R⌉): ē of one receiver tile of one jet."""
    jet = tl.program_id(0).to(tl.int64)
    r0 = tl.program_id(1) * BLOCK_R
    r = r0 + tl.arange(0, BLOCK_R)
    row0 = jet * N
    w2t, b2, w3t, b3 = _load_weights(w2_ptr, b2_ptr, w3_ptr, b3_ptr, H, H2, DE, H_PAD, H2_PAD, DE_PAD)
    length = tl.load(length_ptr + jet)  # last real particle + 1
    stop = tl.where(r0 < length, length, 0)  # receivers all padding: nothing to do
    h_r, real_r = _load_particles(h_r_ptr, mask_ptr, row0, r, N, H, H_PAD)
    acc = tl.zeros((BLOCK_R, DE_PAD), dtype=tl.float32)
    for s0 in range(0, stop, BLOCK_S):
        a0, a1, e, s, keep = _pair_tile(h_r, real_r, r, s0, h_s_ptr, mask_ptr, row0, N, H, w2t, b2, w3t, b3,
                                        ACT, PRECISION, UPCAST, BLOCK_R, BLOCK_S, H_PAD)
        acc += tl.sum(tl.where(keep[:, :, None], tl.reshape(e, (BLOCK_R, BLOCK_S, DE_PAD)), 0.0), axis=1)
    kde = tl.arange(0, DE_PAD)
    tl.store(out_ptr + (row0 + r)[:, None] * DE + kde[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=(r[:, None] < N) & (kde[None, :] < DE))


@triton.jit
def _backward_kernel(h_r_ptr, h_s_ptr, mask_ptr, length_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, grad_ptr,
                     grad_h_r_ptr, grad_h_s_ptr, grad_w_ptr, B, N, H, H2, DE, JET_STEP,
                     ACT: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_R: tl.constexpr,
                     BLOCK_S: tl.constexpr, H_PAD: tl.constexpr, H2_PAD: tl.constexpr, DE_PAD: tl.constexpr):
    """Grid (JET_STEP, ⌈N / BLOCK_R⌉): gradients of one receiver tile of jets j, j + JET_STEP, ...

    Writes ∂h_r of its rows, atomically adds ∂h_s (fp32 buffer) and stores its weight-gradient
    partial ``[∂W_2 (H2·H), ∂W_3 (DE·H2), ∂b_2 (H2), ∂b_3 (DE)]`` at row ``program`` of ``grad_w``.
    """
    first_jet = tl.program_id(0)
    r0 = tl.program_id(1) * BLOCK_R
    r = r0 + tl.arange(0, BLOCK_R)
    kh, kh2, kde = tl.arange(0, H_PAD), tl.arange(0, H2_PAD), tl.arange(0, DE_PAD)
    w2t, b2, w3t, b3 = _load_weights(w2_ptr, b2_ptr, w3_ptr, b3_ptr, H, H2, DE, H_PAD, H2_PAD, DE_PAD)
    grad_w2 = tl.zeros((H2_PAD, H_PAD), dtype=tl.float32)
    grad_w3 = tl.zeros((DE_PAD, H2_PAD), dtype=tl.float32)
    grad_b2 = tl.zeros((H2_PAD,), dtype=tl.float32)
    grad_b3 = tl.zeros((DE_PAD,), dtype=tl.float32)
    for jet in range(first_jet, B, JET_STEP):
        row0 = tl.cast(jet, tl.int64) * N
        length = tl.load(length_ptr + jet)
        stop = tl.where(r0 < length, length, 0)
        h_r, real_r = _load_particles(h_r_ptr, mask_ptr, row0, r, N, H, H_PAD)
        grad_out = tl.load(grad_ptr + (row0 + r)[:, None] * DE + kde[None, :],
                           mask=(r[:, None] < N) & (kde[None, :] < DE), other=0.0).to(tl.float32)
        grad_h_r = tl.zeros((BLOCK_R, H_PAD), dtype=tl.float32)
        for s0 in range(0, stop, BLOCK_S):
            a0, a1, e, s, keep = _pair_tile(h_r, real_r, r, s0, h_s_ptr, mask_ptr, row0, N, H, w2t, b2, w3t, b3,
                                            ACT, PRECISION, UPCAST, BLOCK_R, BLOCK_S, H_PAD)
            g = tl.reshape(tl.where(keep[:, :, None], grad_out[:, None, :], 0.0), (BLOCK_R * BLOCK_S, DE_PAD))
            g = _activate_backward(g, e, ACT)  # ∂L/∂z_2
            grad_w3 += _dot(tl.trans(g), a1, w2t, PRECISION, UPCAST)
            grad_b3 += tl.sum(g, axis=0)
            g = _dot(g, tl.trans(w3t), w2t, PRECISION, UPCAST)
            g = _activate_backward(g, a1, ACT)  # ∂L/∂z_1
            grad_w2 += _dot(tl.trans(g), a0, w2t, PRECISION, UPCAST)
            grad_b2 += tl.sum(g, axis=0)
            g = _dot(g, tl.trans(w2t), w2t, PRECISION, UPCAST)
            g = tl.reshape(_activate_backward(g, a0, ACT), (BLOCK_R, BLOCK_S, H_PAD))  # ∂L/∂(h_r + h_s)
            grad_h_r += tl.sum(g, axis=1)
            tl.atomic_add(grad_h_s_ptr + (row0 + s)[:, None] * H + kh[None, :], tl.sum(g, axis=0),
                          mask=(s[:, None] < N) & (kh[None, :] < H))
        tl.store(grad_h_r_ptr + (row0 + r)[:, None] * H + kh[None, :], grad_h_r.to(grad_h_r_ptr.dtype.element_ty),
                 mask=(r[:, None] < N) & (kh[None, :] < H))
    out = grad_w_ptr + (tl.program_id(1) * JET_STEP + first_jet).to(tl.int64) * (H2 * H + DE * H2 + H2 + DE)
    tl.store(out + kh2[:, None] * H + kh[None, :], grad_w2, mask=(kh2[:, None] < H2) & (kh[None, :] < H))
    out += H2 * H
    tl.store(out + kde[:, None] * H2 + kh2[None, :], grad_w3, mask=(kde[:, None] < DE) & (kh2[None, :] < H2))
    out += DE * H2
    tl.store(out + kh2, grad_b2, mask=kh2 < H2)
    tl.store(out + H2 + kde, grad_b3, mask=kde < DE)


# -- launching ------------------------------------------------------------------------------------
def _pad(n: int) -> int:
    return max(16, triton.next_power_of_2(int(n)))  # tl.dot needs every dimension >= 16


def tile_sizes(hidden: int, hidden2: int, edge_dim: int, backward: bool = False) -> tuple[int, int]:
    """``(BLOCK_R, BLOCK_S)`` of a pass: ``P = BLOCK_R·BLOCK_S`` pairs per tile, as many as fit.

    The live fp32 tiles are about ``P·(N¹ + N¹/2 + D_E)`` (padded) per pass: at most 8192
    elements forward (4 warps), 4096 backward (8 warps; it also keeps gradients): at the
    paper's sizes ptxas (sm_90a) reports no spills forward and at most ~120 bytes backward.
    Chosen from compile reports, not tuned on a GPU. Forward puts the senders along the
    tile's long side; backward the receivers, since each (receiver tile, sender) pair costs
    an atomic add of ``∂h_s``.

    Args:
        hidden: N¹, f_R's first width.
        hidden2: N¹/2, its second width.
        edge_dim: D_E, its output width.
        backward: the sizes of the backward pass.

    Returns:
        ``(BLOCK_R, BLOCK_S)``, powers of two.
    """
    width = _pad(hidden) + _pad(hidden2) + _pad(edge_dim)
    budget = 4096 if backward else 8192
    pairs = max(16, min(256, 1 << max(0, (budget // width).bit_length() - 1)))
    long_side = min(16, pairs)
    return (long_side, pairs // long_side) if backward else (pairs // long_side, long_side)


class _TritonEdgeSum(torch.autograd.Function):
    """``ē = Σ_s m_rs f_R'(h_r + h_s)`` (B, N, D_E) by the fused kernels; no double backward."""

    @staticmethod
    def forward(ctx, h_r, h_s, mask, activation, tiles, w2, b2, w3, b3):
        B, N, H = h_s.shape
        H2, DE = w2.shape[0], w3.shape[0]
        weights = [t.to(h_s.dtype).contiguous() for t in (w2, b2, w3, b3)]
        mask = mask.contiguous()
        lengths = torch.where(mask != 0, torch.arange(1, N + 1, device=mask.device), 0).amax(dim=1).to(torch.int32)
        meta = dict(ACT=_ACTIVATION_CODES[activation], PRECISION=_precision(h_s.dtype), UPCAST=INTERPRETED,
                    H_PAD=_pad(H), H2_PAD=_pad(H2), DE_PAD=_pad(DE))
        block_r, block_s = tiles or tile_sizes(H, H2, DE)
        e_bar = h_s.new_empty(B, N, DE)
        if B:
            _forward_kernel[(B, triton.cdiv(N, block_r))](
                h_r, h_s, mask, lengths, *weights, e_bar, N, H, H2, DE,
                BLOCK_R=block_r, BLOCK_S=block_s, **meta, **_launch_options(4))
        ctx.save_for_backward(h_r, h_s, mask, lengths, *weights)
        ctx.meta, ctx.tiles, ctx.weight_dtypes = meta, tiles, [t.dtype for t in (w2, b2, w3, b3)]
        return e_bar

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_e_bar):
        h_r, h_s, mask, lengths, w2, b2, w3, b3 = ctx.saved_tensors
        B, N, H = h_s.shape
        H2, DE = w2.shape[0], w3.shape[0]
        block_r, block_s = ctx.tiles or tile_sizes(H, H2, DE, backward=True)
        n_tiles = triton.cdiv(N, block_r)
        jet_step = max(1, min(B, triton.cdiv(_target_programs(h_s.device), n_tiles)))
        grad_h_r = torch.empty_like(h_r)
        grad_h_s = torch.zeros(B, N, H, dtype=torch.float32, device=h_s.device)
        sizes = [H2 * H, DE * H2, H2, DE]
        partials = torch.zeros(jet_step * n_tiles, sum(sizes), dtype=torch.float32, device=h_s.device)
        if B:
            _backward_kernel[(jet_step, n_tiles)](
                h_r, h_s, mask, lengths, w2, b2, w3, b3, grad_e_bar.contiguous(), grad_h_r, grad_h_s, partials,
                B, N, H, H2, DE, jet_step, BLOCK_R=block_r, BLOCK_S=block_s, **ctx.meta, **_launch_options(8))
        g_w2, g_w3, g_b2, g_b3 = partials.sum(dim=0).split(sizes)
        grads = [g.view(t.shape).to(dtype) for g, t, dtype in
                 zip((g_w2, g_b2, g_w3, g_b3), (w2, b2, w3, b3), ctx.weight_dtypes)]
        return grad_h_r, grad_h_s.to(h_s.dtype), None, None, None, *grads


def _launch_options(num_warps: int) -> dict:
    # enable_fp_fusion given: an unset TRITON_DEFAULT_FP_FUSION warns on every compile in Triton 3.9
    return {} if INTERPRETED else {"enable_fp_fusion": True, "num_warps": num_warps}


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 and not INTERPRETED:
        return "tf32"
    return "ieee"


def _target_programs(device: torch.device) -> int:
    """Backward programs to aim for: enough to fill the GPU, few weight-gradient partials."""
    if device.type == "cuda":
        return 8 * torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def unsupported(x: torch.Tensor, activation: str) -> str | None:
    """Why the kernels cannot take input ``x`` with ``f_R`` activation ``activation``.

    Args:
        x: the particle input (its dtype and device matter).
        activation: f_R's activation.

    Returns:
        The reason, or None when they can.

    Shapes:
        - x: ``(batch, particles, features)``
    """
    if activation not in _ACTIVATION_CODES:
        return f"f_R activation {activation!r} is not supported (supported: {', '.join(SUPPORTED_ACTIVATIONS)})"
    if x.dtype not in SUPPORTED_DTYPES:
        return f"{x.dtype} inputs are not supported (float32, bfloat16, float16)"
    if not x.is_cuda and not INTERPRETED:
        return ("the Triton kernel runs on CUDA tensors (on CPU only under Triton's interpreter, for "
                "testing: TRITON_INTERPRET=1 set before jetlab first imports its kernels)")
    return None


def edge_sum(h_receiver: torch.Tensor, h_sender: torch.Tensor, mask: torch.Tensor, activation: str,
             w2: torch.Tensor, b2: torch.Tensor, w3: torch.Tensor, b3: torch.Tensor,
             tiles: tuple[int, int] | None = None) -> torch.Tensor:
    """``ē`` of JEDI-net (Moreno et al., arXiv:1908.05318) by the fused kernels; differentiable
    in ``h_r``, ``h_s`` and the weights.

    Args:
        h_receiver: ``h_r = W_r o + b_1``, the receiver half of f_R's first layer.
        h_sender: ``h_s = W_s o``, the sender half.
        mask: float mask of the real particles.
        activation: one of :data:`SUPPORTED_ACTIVATIONS`, applied after every layer.
        w2: weight of f_R's second layer.
        b2: its bias.
        w3: weight of f_R's third layer.
        b3: its bias.
        tiles: ``(BLOCK_R, BLOCK_S)`` powers of two, ``BLOCK_R·BLOCK_S >= 16``, for both passes
            (``None``: :func:`tile_sizes` per pass).

    Returns:
        The summed edge messages ``ē``.

    Shapes:
        - h_receiver, h_sender: ``(batch, particles, N¹)``
        - mask: ``(batch, particles)``
        - w2, b2: ``(N¹/2, N¹)``, ``(N¹/2,)``
        - w3, b3: ``(D_E, N¹/2)``, ``(D_E,)``
        - returns: ``(batch, particles, D_E)``
    """
    if h_receiver.shape != h_sender.shape or h_sender.dim() != 3 or mask.shape != h_sender.shape[:2]:
        raise ValueError(f"edge_sum: h_r, h_s (B, N, H) and mask (B, N), got {tuple(h_receiver.shape)}, "
                         f"{tuple(h_sender.shape)}, {tuple(mask.shape)}")
    if h_receiver.dtype != h_sender.dtype or h_sender.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"edge_sum: h_r and h_s must share a dtype among {SUPPORTED_DTYPES}")
    return _TritonEdgeSum.apply(h_receiver.contiguous(), h_sender.contiguous(), mask, activation, tiles,
                                w2, b2, w3, b3)
