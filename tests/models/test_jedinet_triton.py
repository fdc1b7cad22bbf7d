"""The fused Triton JEDI-net kernels against the dense R_r/R_s oracle.

With CUDA the compiled kernels run on the GPU. Without, they run under Triton's
interpreter on CPU tensors: tests/conftest.py sets ``TRITON_INTERPRET=1`` before anything
imports Triton (it decides between compiling and interpreting at import). The interpreter
is slow: tiny batches and particle counts.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (pip install 'jetlab[gpu]')")

from jetlab.errors import JetlabError  # noqa: E402
from jetlab.models import DenseJEDINet, DenseJEDINetSumO, JEDINet, JEDINetSumO  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
VARIANTS = {"flat": (JEDINet, DenseJEDINet), "sumo": (JEDINetSumO, DenseJEDINetSumO)}
SMALL = {"hidden": 8, "edge_dim": 3, "object_dim": 4}


from jetlab.models import jedinet_triton as kernels  # noqa: E402

if DEVICE == "cpu" and not kernels.INTERPRETED:
    pytest.skip("no CUDA, and Triton was imported without TRITON_INTERPRET=1 (tests/conftest.py sets it "
                "before any import; run with TRITON_INTERPRET=1)", allow_module_level=True)


def models(variant, n, seed=0, **hp):
    """A float32 Triton-kernel model on DEVICE and a float64 dense oracle with its weights."""
    fast_cls, dense_cls = VARIANTS[variant]
    hp = {**SMALL, **hp}
    torch.manual_seed(seed)
    fast = fast_cls(n, 5, kernel="triton", **hp).to(DEVICE)
    dense = dense_cls(n, 5, **hp).double()
    dense.load_state_dict(fast.state_dict())
    return fast, dense


def jets(n, b=4, seed=1):
    """Particles (b, n, 5) float64 and a mask: one full jet, one fully padded, one zero-padded."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(b, n, generator=g) > 0.3
    mask[0] = True
    mask[1] = False
    mask[2, n // 2:] = False
    return x, mask


def compare(fast, dense, x, mask, tol=1e-5):
    """Outputs, input gradients and every parameter gradient of the two models agree within ``tol``."""
    labels = torch.arange(x.shape[0]) % 5
    x_fast = x.float().to(DEVICE).requires_grad_()
    x_dense = x.clone().requires_grad_()
    out_fast, out_dense = fast(x_fast, mask.to(DEVICE)), dense(x_dense, mask)
    assert (out_fast.double().cpu() - out_dense).abs().max() <= tol
    torch.nn.functional.cross_entropy(out_fast, labels.to(DEVICE)).backward()
    torch.nn.functional.cross_entropy(out_dense, labels).backward()
    for (name, p_fast), p_dense in zip(fast.named_parameters(), dense.parameters()):
        assert (p_fast.grad.double().cpu() - p_dense.grad).abs().max() <= tol, name
    assert (x_fast.grad.double().cpu() - x_dense.grad).abs().max() <= tol


@pytest.mark.parametrize("variant", ["flat", "sumo"])
@pytest.mark.parametrize("n", [1, 5, 20])
def test_matches_dense_oracle_for_several_particle_counts(variant, n):
    """20 particles: more than one tile of receivers and senders, the last one partial."""
    fast, dense = models(variant, n, f_r_activation="selu")
    compare(fast, dense, *jets(n))


@pytest.mark.parametrize("activation", ["relu", "elu", "leaky_relu", "tanh", "sigmoid", "identity"])
def test_matches_dense_oracle_for_each_activation(activation):
    fast, dense = models("sumo", 7, f_r_activation=activation)
    compare(fast, dense, *jets(7))


@pytest.mark.parametrize(("hidden", "edge_dim"), [(2, 1), (40, 17)])
def test_matches_dense_oracle_for_edge_and_hidden_sizes(hidden, edge_dim):
    """N¹ = 2 (N¹/2 = 1) up to padded widths of 64 and 32."""
    fast, dense = models("flat", 9, hidden=hidden, edge_dim=edge_dim, f_r_activation="elu")
    compare(fast, dense, *jets(9))


def grid_reference(h_r, h_s, mask, activation, w2, b2, w3, b3):
    """``ē_r = Σ_s m_rs f_R'(h_r + h_s)`` over the whole (B, N, N, N¹) grid, by plain autograd."""
    act = {"selu": torch.nn.functional.selu, "relu": torch.relu}[activation]
    pre = h_r[:, :, None, :] + h_s[:, None, :, :]
    e = act(torch.nn.functional.linear(act(torch.nn.functional.linear(act(pre), w2, b2)), w3, b3))
    n = h_r.shape[1]
    m = mask[:, :, None] * mask[:, None, :] * (1 - torch.eye(n, dtype=mask.dtype))
    return (e * m[..., None]).sum(dim=2)


@pytest.mark.parametrize("tiles", [(1, 16), (16, 1), (4, 4), (2, 8)])
def test_every_tiling_gives_the_grid_sum(tiles):
    """Receiver and sender tiles of any shape (20 = 5 × 4 = 1 × 16 + 4 ...) sum the same pairs."""
    g = torch.Generator().manual_seed(2)
    B, N, H, H2, DE = 3, 20, 6, 3, 5
    tensors = [torch.randn(shape, generator=g, dtype=torch.float64) * 0.5
               for shape in [(B, N, H), (B, N, H), (H2, H), (H2,), (DE, H2), (DE,)]]
    mask = jets(N, b=B)[1].double()
    ref_inputs = [t.clone().requires_grad_() for t in tensors]
    ref = grid_reference(ref_inputs[0], ref_inputs[1], mask, "selu", *ref_inputs[2:])
    inputs = [t.float().to(DEVICE).requires_grad_() for t in tensors]
    out = kernels.edge_sum(inputs[0], inputs[1], mask.float().to(DEVICE), "selu", *inputs[2:], tiles=tiles)
    assert (out.double().cpu() - ref).abs().max() <= 1e-5 * ref.abs().max()
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref.backward(grad)
    out.backward(grad.float().to(DEVICE))
    for mine, theirs in zip(inputs, ref_inputs):  # fp32 to 1e-5 of the largest entry
        assert (mine.grad.double().cpu() - theirs.grad).abs().max() <= 1e-5 * theirs.grad.abs().max()


@pytest.mark.parametrize(("variant", "dtype"), [("flat", torch.bfloat16), ("sumo", torch.bfloat16),
                                               ("sumo", torch.float16)])
def test_half_precision_model_is_close_to_the_oracle(variant, dtype):
    """bf16/fp16 storage and dot operands, fp32 accumulation: within rounding of the oracle."""
    fast, dense = models(variant, 12, f_r_activation="selu")
    fast = fast.to(dtype)
    x, mask = jets(12)
    x_fast = x.to(DEVICE, dtype).requires_grad_()
    out = fast(x_fast, mask.to(DEVICE)).double().cpu()
    x_dense = x.clone().requires_grad_()
    reference = dense(x_dense, mask)
    assert (out - reference).abs().max() <= 2e-2 * max(1.0, float(reference.detach().abs().max()))
    out.sum().backward()
    reference.sum().backward()
    g_fast, g_dense = x_fast.grad.double().cpu().flatten(), x_dense.grad.flatten()
    assert torch.nn.functional.cosine_similarity(g_fast, g_dense, dim=0) > 0.99
    assert torch.all(x_fast.grad[~mask.to(DEVICE)] == 0)  # padding gets no gradient


def test_pruned_edge_network_stays_exact(prune_edge_networks):
    """torch.nn.utils.prune masks reach the kernels through ``_linear_parameters``."""
    fast, dense = models("sumo", 6, f_r_activation="relu")
    prune_edge_networks(fast, dense)
    compare(fast, dense, *jets(6))
    for layer in fast.f_R.layers:
        assert torch.all(layer.weight_orig.grad[layer.weight_mask == 0] == 0)


def test_fully_padded_batch_and_no_pair_grid_kept():
    fast, dense = models("sumo", 16)
    x, mask = jets(16)
    compare(fast, dense, x, torch.zeros_like(mask))  # every jet empty: ē = 0
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        e_bar = fast.interaction(x.float().to(DEVICE), mask.float().to(DEVICE))
    assert "TritonEdgeSum" in e_bar.grad_fn.name()
    grid = 4 * 16 * 16 * SMALL["hidden"]  # B·N·N·N¹
    assert sum(saved) < grid / 4  # x, h_r, h_s, mask, lengths, weights: per particle only


def test_unusable_kernel_is_a_clear_error(monkeypatch):
    x, mask = jets(5)
    with pytest.raises(JetlabError, match="activation 'gelu'.*kernel=torch"):
        models("sumo", 5, f_r_activation="gelu")[0](x.float().to(DEVICE), mask.to(DEVICE))
    with pytest.raises(JetlabError, match="float64"):
        models("sumo", 5)[0].double()(x.to(DEVICE), mask.to(DEVICE))
    auto = JEDINetSumO(5, 5, **SMALL, f_r_activation="gelu").to(DEVICE)  # auto: falls back to torch
    assert auto(x.float().to(DEVICE), mask.to(DEVICE)).shape == (4, 5)
    monkeypatch.setattr(kernels, "INTERPRETED", False)
    if DEVICE == "cpu":
        with pytest.raises(JetlabError, match="CUDA.*TRITON_INTERPRET=1"):
            models("sumo", 5)[0](x.float(), mask)


@pytest.mark.skipif(DEVICE != "cuda", reason="needs CUDA")
def test_auto_uses_the_kernels_on_cuda():
    model = JEDINetSumO(6, 5, **SMALL).cuda()
    e_bar = model.interaction(torch.randn(2, 6, 5, device="cuda", requires_grad=True), torch.ones(2, 6, device="cuda"))
    assert "TritonEdgeSum" in e_bar.grad_fn.name()


COMPILE_FOR_GPUS = """
import triton
from triton.backends.compiler import GPUTarget
from jetlab.models import jedinet_triton as k
assert not k.INTERPRETED
for kernel, backward in ((k._forward_kernel, False), (k._backward_kernel, True)):
    for dtype in ("fp32", "bf16"):
        for arch in (80, 90):
            ints = ("N", "H", "H2", "DE", "B", "JET_STEP")
            signature = {a: "i32" if a in ints else "constexpr" if a.isupper() else
                         "*i32" if a == "length_ptr" else "*fp32" if a in ("mask_ptr", "grad_h_s_ptr", "grad_w_ptr")
                         else "*" + dtype for a in kernel.arg_names}
            block_r, block_s = k.tile_sizes(50, 25, 14, backward)
            constants = dict(ACT=3, PRECISION="ieee", UPCAST=False, BLOCK_R=block_r, BLOCK_S=block_s,
                             H_PAD=64, H2_PAD=32, DE_PAD=16)
            source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constants)
            compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                                      options={"num_warps": 8 if backward else 4, "enable_fp_fusion": True})
            assert compiled.asm["cubin"]
print("compiled")
"""


@pytest.mark.slow
def test_kernels_compile_for_ampere_and_hopper():
    """The interpreter accepts code the compiler rejects: compile to cubin (no GPU needed)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", COMPILE_FOR_GPUS], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]
