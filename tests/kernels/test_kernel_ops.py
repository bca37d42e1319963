"""The Triton T2S / S2T kernels against the pure PyTorch reference.

Sizes are deliberately awkward: frame counts that are not powers of two, patch
counts that leave tails in every block size, head dims that need a masked tile,
key lengths longer and shorter than the query length, strided (CLS-sliced) queries
and strided key/value tensors.
"""

import pytest

from tests.kernels.utils import (
    TOLERANCE,
    random_tensor,
    requires_torch_kernels,
    stream_query,
)

pytestmark = requires_torch_kernels

DTYPES = ("float32", "float16", "bfloat16")

# (batch, frames, patches, key patches, channels, heads)
TIME_CASES = {
    "t5_n13_d24": (2, 5, 13, 13, 48, 2),  # T not a power of two, D = 24 masked
    "t8_n37_d32": (1, 8, 37, 37, 64, 2),  # CAST T, 37 windows → partial last block
    "t3_n7_d8": (1, 3, 7, 7, 32, 4),  # 16 windows per tile, D = 8 padded to 16
}
SPACE_CASES = {
    "n70_k77_d24": (1, 2, 70, 77, 48, 2),  # two query and key blocks, both tailed
    "n37_k130_d32": (2, 1, 37, 130, 32, 1),  # more key blocks than query blocks
    "n196_k196_d32": (1, 1, 196, 196, 64, 2),  # CAST-B frame: 196 = 3·64 + 4
}


def _ops(window):
    from keras_ca2st.kernels import ops, reference

    if window == "time":
        return ops.time_window_attention_op, reference.time_window_attention_reference
    return ops.space_window_attention_op, reference.space_window_attention_reference


def _inputs(case, dtype_name, seed):
    """Strided query (CLS view of a stream) and strided key_value (a column slice
    of a wider projection output), plus an output gradient."""
    import torch

    dtype = getattr(torch, dtype_name)
    batch, frames, patches, kv_patches, channels, heads = case
    base, query = stream_query(batch, frames, patches, channels, dtype, seed)
    wide = random_tensor((batch, frames, kv_patches, 3 * channels), dtype, seed + 1)
    key_value = wide[..., channels:]
    grad = random_tensor((batch, frames, patches, channels), dtype, seed + 2)
    return base, query, key_value, grad, heads


def _run(fn, query, key_value, heads, grad):
    """Forward and backward through torch autograd; returns out, lse, dq, dkv."""
    query = query.detach().requires_grad_()
    key_value = key_value.detach().requires_grad_()
    out, lse = fn(query, key_value, heads)
    out.backward(grad)
    return out, lse, query.grad, key_value.grad


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("case", TIME_CASES.values(), ids=TIME_CASES.keys())
def test_time_window_matches_reference(case, dtype_name):
    _check("time", case, dtype_name, seed=11)


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("case", SPACE_CASES.values(), ids=SPACE_CASES.keys())
def test_space_window_matches_reference(case, dtype_name):
    _check("space", case, dtype_name, seed=23)


def _check(window, case, dtype_name, seed):
    """Kernel forward + backward against the fp32 reference on the same inputs."""
    import torch

    kernel, reference = _ops(window)
    _, query, key_value, grad, heads = _inputs(case, dtype_name, seed)
    got = _run(kernel, query, key_value, heads, grad)
    want = _run(reference, query.float(), key_value.float(), heads, grad.float())
    atol, rtol = TOLERANCE[dtype_name]
    errors = {}
    for name, g, w in zip(("out", "lse", "dq", "dkv"), got, want, strict=True):
        assert g.shape == w.shape, name
        assert g.dtype == (torch.float32 if name == "lse" else query.dtype), name
        errors[name] = (g.float() - w).abs().max().item()
        torch.testing.assert_close(
            g.float(), w, atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}"
        )
    print(f"{window} {dtype_name} max abs errors: {errors}")  # shown with -s
    # Gradients are not trivially small: the comparison above means something.
    assert want[2].abs().max() > 0.1 and want[3].abs().max() > 0.1


@pytest.mark.parametrize("window", ("time", "space"))
def test_gradient_reaches_the_stream_and_accepts_expanded_grads(window):
    """`out.sum()` sends a stride-0 gradient; the CLS row of the stream gets none."""
    import torch

    kernel, reference = _ops(window)
    case = TIME_CASES["t5_n13_d24"] if window == "time" else SPACE_CASES["n70_k77_d24"]
    base, _, key_value, _, heads = _inputs(case, "float32", seed=5)
    grads = []
    for fn in (kernel, reference):
        stream = base.detach().requires_grad_()
        batch, frames = case[0], case[1]
        query = stream.view(batch, frames, *stream.shape[1:])[:, :, 1:]
        out, _ = fn(query, key_value, heads)
        out.sum().backward()
        grads.append(stream.grad)
    assert torch.all(grads[0][:, 0] == 0)
    torch.testing.assert_close(grads[0], grads[1], atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("window", ("time", "space"))
def test_opcheck(window):
    import torch

    from keras_ca2st.kernels import ops

    case = TIME_CASES["t5_n13_d24"] if window == "time" else (1, 2, 21, 19, 32, 2)
    _, query, key_value, grad, heads = _inputs(case, "float32", seed=3)
    forward = getattr(ops, f"{window}_window_attention_op")
    backward = getattr(ops, f"{window}_window_attention_backward_op")
    query.requires_grad_()
    key_value.requires_grad_()
    # Also checks the autograd registration, the fake kernel and AOT dispatch.
    torch.library.opcheck(forward, (query, key_value, heads))
    out, lse = forward(query.detach(), key_value.detach(), heads)
    saved = (out, lse) if window == "space" else (lse,)
    torch.library.opcheck(
        backward, (grad, query.detach(), key_value.detach(), *saved, heads)
    )


def test_torch_compile_fullgraph_matches_eager():
    """Both ops, forward and backward, traced by dynamo + AOTAutograd in one graph."""
    import torch

    from keras_ca2st import kernels

    _, query, key_value, grad, heads = _inputs(
        TIME_CASES["t5_n13_d24"], "float32", seed=7
    )

    def block(q, kv):
        mixed = kernels.time_window_attention(q, kv, heads)
        return kernels.space_window_attention(mixed, kv, heads) * 2.0

    results = []
    for fn in (block, torch.compile(block, backend="aot_eager", fullgraph=True)):
        q = query.detach().requires_grad_()
        kv = key_value.detach().requires_grad_()
        out = fn(q, kv)
        out.backward(grad)
        results.append((out, q.grad, kv.grad))
    for eager, compiled in zip(*results, strict=True):
        torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=1e-6)


def test_meta_tensors_take_the_fake_kernel():
    import torch

    from keras_ca2st import kernels

    query = torch.empty(2, 8, 197, 64, device="meta")[:, :, 1:]
    key_value = torch.empty(2, 8, 196, 128, device="meta")
    for fn in (kernels.time_window_attention, kernels.space_window_attention):
        out = fn(query, key_value, 2)
        assert out.device.type == "meta" and out.shape == (2, 8, 196, 64)
        assert out.is_contiguous()


def test_rejects_inputs_the_kernels_do_not_take():
    import torch

    from keras_ca2st import kernels

    query = random_tensor((1, 3, 5, 32), torch.float32, seed=0)
    with pytest.raises(ValueError, match="2·C|does not match"):
        kernels.space_window_attention(query, query, 2)
    key_value = random_tensor((1, 3, 4, 64), torch.float32, seed=1)
    with pytest.raises(ValueError, match="as many key positions"):
        kernels.time_window_attention(query, key_value, 2)
    with pytest.raises(ValueError, match="heads"):
        kernels.space_window_attention(query, key_value, 3)
    with pytest.raises(ValueError, match="dtype"):
        kernels.space_window_attention(query, key_value.double(), 2)
    with pytest.raises(ValueError, match="head_dim 160"):
        wide = random_tensor((1, 3, 5, 160), torch.float32, seed=2)
        kernels.space_window_attention(wide, torch.cat([wide, wide], -1), 1)
