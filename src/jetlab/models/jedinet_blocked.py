"""JEDI-net's interaction sum in plain torch, for CPU (and GPUs without Triton):
``ē_r = Σ_s m_rs f_R'(h_r + h_s)`` over the (receiver, sender) grid in receiver blocks.

``h_r = W_r o_r + b_1`` and ``h_s = W_s o_s`` are the two halves of ``f_R``'s first layer,
computed once per particle by :class:`jetlab.models.jedinet.JEDINet`; ``f_R'`` is the rest of
``f_R`` (act, Linear, act, ..., act) and ``m_rs = mask_r mask_s [r ≠ s]``. The grid is
broadcast one block of receivers at a time, channels first, so the ``(B, N, N, N¹)`` tensor
never exists whole (the blocking: :mod:`jetlab.models.pair_grid`); :class:`FusedEdgeSum` differentiates the blocks by hand, recomputing
each in backward, so training needs O(B·N·N¹) memory. The same sum as a fused GPU kernel:
:mod:`jetlab.models.jedinet_triton`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jetlab.models.pair_grid import edge_mask_block, receiver_blocks

__all__ = ["FUSED_ACTIVATIONS", "FusedEdgeSum", "edge_mask_block"]

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _activate_(name: str, t: torch.Tensor) -> torch.Tensor:
    """In-place activation of a scratch buffer."""
    if name == "relu":
        return t.relu_()
    if name == "elu":
        return F.elu_(t)
    if name == "selu":
        return F.selu(t, inplace=True)
    if name == "leaky_relu":
        return F.leaky_relu_(t, 0.01)
    if name == "tanh":
        return t.tanh_()
    if name == "sigmoid":
        return t.sigmoid_()
    return t  # identity


def _activation_backward_(name: str, grad: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    """``grad *= act'(x)`` in place, computed from ``result = act(x)``."""
    aten = torch.ops.aten
    if name == "relu":
        return aten.threshold_backward.grad_input(grad, result, 0, grad_input=grad)
    if name == "elu":
        return aten.elu_backward.grad_input(grad, 1.0, 1.0, 1.0, True, result, grad_input=grad)
    if name == "selu":
        return aten.elu_backward.grad_input(grad, _SELU_ALPHA, _SELU_SCALE, 1.0, True, result, grad_input=grad)
    if name == "leaky_relu":
        return aten.leaky_relu_backward.grad_input(grad, result, 0.01, True, grad_input=grad)
    if name == "tanh":
        return aten.tanh_backward.grad_input(grad, result, grad_input=grad)
    if name == "sigmoid":
        return aten.sigmoid_backward.grad_input(grad, result, grad_input=grad)
    return grad


#: activations the fused edge sum differentiates by hand (others use plain autograd blocks)
FUSED_ACTIVATIONS = ("relu", "elu", "selu", "leaky_relu", "tanh", "sigmoid", "identity")


def _exp_factored_first_activation(activation, h_receiver, h_sender):
    """Per-particle factors that evaluate ELU/SELU on the grid without an ``exp`` per edge.

    For ``x = h_r + h_s``, ``exp(x) = exp(h_r) exp(h_s)``, so with ``c`` = scale and
    ``a`` = alpha (ELU: 1, 1)::

        act(x) = c max(x, 0) + c a (min(exp(x), 1) - 1)
               = max(u_r + v_s, -c a) + min(U_r V_s, c a),
        u_r = c h_r - c a,  v_s = c h_s,  U_r = c a exp(h_r),  V_s = exp(h_s)

    i.e. an add, a multiply and three clamps/adds per entry, about twice as fast on CPU
    as ``exp``. Used on CPU when every ``|h| <= 40`` (no overflow or underflow in the
    factors); returns None otherwise (the caller then applies the activation directly).
    """
    if activation not in ("elu", "selu") or h_sender.device.type != "cpu":
        return None
    limit = 40.0
    if max(float(h_receiver.abs().amax()), float(h_sender.abs().amax())) > limit:
        return None
    scale, alpha = (1.0, 1.0) if activation == "elu" else (_SELU_SCALE, _SELU_ALPHA)
    return (scale * h_receiver - scale * alpha, scale * h_sender,
            (scale * alpha) * h_receiver.exp(), h_sender.exp(), scale * alpha)


def _edge_block_forward(h_receiver, h_sender, r0, r1, layers, activation, buffers, factors=None):
    """``f_R`` on the receiver block ``r0:r1`` of the grid, channels first, into ``buffers``.

    ``h_receiver``, ``h_sender`` are (N¹, B, N). Returns the activations ``[a_0, ..., a_L]``
    (views of the buffers) as 2-d ``(width, B·nb·N)`` tensors: ``a_0 = act(h_r + h_s)``,
    ``a_L = e``. Channels-first keeps the long ``B·nb·N`` axis as the GEMMs' output
    columns, several times faster on CPU than ``(B·nb·N, width) @ (width, out)``.
    ``factors`` (from :func:`_exp_factored_first_activation`) needs ``buffers[-1]``, a
    scratch of the first layer's size.
    """
    H, B, N = h_sender.shape
    columns = B * (r1 - r0) * N
    pre = buffers[0][: H * columns].view(H, B, r1 - r0, N)
    if factors is None:
        torch.add(h_receiver[:, :, r0:r1, None], h_sender[:, :, None, :], out=pre)
        first = _activate_(activation, pre)
    else:
        u_receiver, v_sender, exp_receiver, exp_sender, bound = factors
        scratch = buffers[-1][: H * columns].view(H, B, r1 - r0, N)
        torch.add(u_receiver[:, :, r0:r1, None], v_sender[:, :, None, :], out=pre).clamp_(min=-bound)
        torch.mul(exp_receiver[:, :, r0:r1, None], exp_sender[:, :, None, :], out=scratch).clamp_(max=bound)
        first = pre.add_(scratch)
    outputs = [first.view(H, columns)]
    for (weight, bias), buffer in zip(layers, buffers[1:]):
        z = buffer[: weight.shape[0] * columns].view(weight.shape[0], columns)
        torch.addmm(bias.unsqueeze(1), weight, outputs[-1], out=z)
        outputs.append(_activate_(activation, z))
    return outputs


class FusedEdgeSum(torch.autograd.Function):
    """``ē_r = Σ_s m_rs f_R'(h_r + h_s)`` in receiver blocks, recomputed in backward.

    ``h_r = W_r o_r + b_1``, ``h_s = W_s o_s`` (N¹, B, N) are the two halves of ``f_R``'s
    first layer, channels first; ``f_R'`` is the rest (act, Linear, act, ..., act). The
    result is ``ē`` (D_E, B, N). Only ``h_r``, ``h_s`` and the weights are saved, so
    training needs O(B·N·N¹) memory instead of the O(B·N²·N¹) autograd would keep; the
    backward pass recomputes each block once. Scratch buffers are reused across blocks.
    No double backward.
    """

    @staticmethod
    def forward(ctx, h_receiver, h_sender, mask, block_size, activation, *weights_and_biases):
        layers = list(zip(weights_and_biases[0::2], weights_and_biases[1::2]))
        H, B, N = h_sender.shape
        block_size = min(block_size, N)
        widths = [H] + [w.shape[0] for w, _ in layers]
        factors = _exp_factored_first_activation(activation, h_receiver, h_sender)
        buffers = [h_sender.new_empty(width * B * block_size * N) for width in widths + [H] * (factors is not None)]
        e_bar = h_sender.new_empty(widths[-1], B, N)
        for r0, r1 in receiver_blocks(N, block_size):
            e = _edge_block_forward(h_receiver, h_sender, r0, r1, layers, activation, buffers, factors)[-1]
            e = e.view(widths[-1], B, r1 - r0, N).mul_(edge_mask_block(mask, r0, r1))
            e_bar[:, :, r0:r1] = e.sum(dim=-1)
        ctx.save_for_backward(h_receiver, h_sender, mask, *weights_and_biases)
        ctx.block_size, ctx.activation = block_size, activation
        return e_bar

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_e_bar):
        h_receiver, h_sender, mask, *weights_and_biases = ctx.saved_tensors
        layers = list(zip(weights_and_biases[0::2], weights_and_biases[1::2]))
        activation, block_size = ctx.activation, ctx.block_size
        H, B, N = h_sender.shape
        widths = [H] + [w.shape[0] for w, _ in layers]
        factors = _exp_factored_first_activation(activation, h_receiver, h_sender)
        buffers = [h_sender.new_empty(width * B * block_size * N) for width in widths + [H] * (factors is not None)]
        grad_buffers = [h_sender.new_empty(width * B * block_size * N) for width in widths]
        grad_receiver = torch.empty_like(h_receiver)
        grad_sender = torch.zeros_like(h_sender)
        grad_weights = [torch.zeros_like(w) for w, _ in layers]
        grad_biases = [torch.zeros_like(b) for _, b in layers]
        for r0, r1 in receiver_blocks(N, block_size):
            columns = B * (r1 - r0) * N
            outputs = _edge_block_forward(h_receiver, h_sender, r0, r1, layers, activation, buffers, factors)
            grad = grad_buffers[-1][: widths[-1] * columns].view(widths[-1], B, r1 - r0, N)
            torch.mul(grad_e_bar[:, :, r0:r1, None], edge_mask_block(mask, r0, r1), out=grad)  # dL/de_rs
            grad = grad.view(widths[-1], columns)
            for i in range(len(layers), 0, -1):
                weight = layers[i - 1][0]
                _activation_backward_(activation, grad, outputs[i])  # dL/dz_i
                grad_weights[i - 1].addmm_(grad, outputs[i - 1].t())
                grad_biases[i - 1] += grad.sum(dim=1)
                below = grad_buffers[i - 1][: widths[i - 1] * columns].view(widths[i - 1], columns)
                torch.mm(weight.t(), grad, out=below)  # dL/da_{i-1}
                grad = below
            _activation_backward_(activation, grad, outputs[0])  # dL/d(h_r + h_s)
            grad = grad.view(H, B, r1 - r0, N)
            grad_receiver[:, :, r0:r1] = grad.sum(dim=-1)
            grad_sender += grad.sum(dim=2)
        grads = [g for pair in zip(grad_weights, grad_biases) for g in pair]
        return grad_receiver, grad_sender, None, None, None, *grads
