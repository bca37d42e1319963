"""An independent PyTorch forward of the official CAST model, for parity tests.

Written from the CAST equations (SPEC §4, §5, §7; KHU-VLL/CAST
`STCrossTransformer`) with `torch.nn.functional` only, reading the official
state-dict names directly. It shares no code with keras_ca2st.

Input: the clip channels-first, `(B, 3, T, H, W)`, as the reference model takes it.
"""

import numpy as np
import torch
import torch.nn.functional as F


def official_cast_state_dict(
    seed=0,
    width=32,
    depth=2,
    image=32,
    patch=16,
    frames=4,
    tubelet=2,
    bottleneck=16,
    adapter=8,
    mlp=64,
    num_classes=5,
    ek100_classes=None,
):
    """Random weights in the official layout (every tensor non-trivial)."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=generator) * scale

    def norm(prefix, dim):
        return {
            f"{prefix}.weight": 1.0 + rand(dim, scale=0.1),
            f"{prefix}.bias": rand(dim, scale=0.1),
        }

    def linear(prefix, out, inp, bias=True):
        tensors = {f"{prefix}.weight": rand(out, inp)}
        if bias:
            tensors[f"{prefix}.bias"] = rand(out, scale=0.1)
        return tensors

    patches = (image // patch) ** 2
    steps = frames // tubelet
    sd = {
        "clip_conv1.weight": rand(width, 3, patch, patch, scale=0.05),
        "clip_class_embedding": rand(width),
        "clip_positional_embedding": rand(patches + 1, width),
        **norm("clip_ln_pre", width),
        **norm("clip_ln_post", width),
        "patch_embed.proj.weight": rand(width, 3, tubelet, patch, patch, scale=0.05),
        "patch_embed.proj.bias": rand(width, scale=0.1),
        **norm("vmae_fc_norm", width),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        sd.update(
            {
                **norm(b + "clip_ln_1", width),
                **norm(b + "clip_ln_2", width),
                f"{b}clip_attn.in_proj_weight": rand(3 * width, width),
                f"{b}clip_attn.in_proj_bias": rand(3 * width, scale=0.1),
                **linear(b + "clip_attn.out_proj", width, width),
                **linear(b + "clip_mlp.c_fc", mlp, width),
                **linear(b + "clip_mlp.c_proj", width, mlp),
                **norm(b + "norm1", width),
                **norm(b + "norm2", width),
                f"{b}attn.qkv.weight": rand(3 * width, width),
                f"{b}attn.q_bias": rand(width, scale=0.1),
                f"{b}attn.v_bias": rand(width, scale=0.1),
                **linear(b + "attn.proj", width, width),
                **linear(b + "mlp.fc1", mlp, width),
                **linear(b + "mlp.fc2", width, mlp),
                **linear(b + "cross_s_down", bottleneck, width),
                **linear(b + "cross_t_down", bottleneck, width),
                **norm(b + "ln_s_cross", bottleneck),
                **norm(b + "ln_t_cross", bottleneck),
                **linear(b + "cross_s_up", width, bottleneck),
                **linear(b + "cross_t_up", width, bottleneck),
            }
        )
        for name in ("S_Adapter", "T_Adapter", "S_MLP_Adapter", "T_MLP_Adapter"):
            sd.update(linear(f"{b}{name}.D_fc1", adapter, width))
            sd.update(linear(f"{b}{name}.D_fc2", width, adapter))
        for module, q, kv, positions in (
            ("t2s_cross", "t2s_q", "t2s_kv", ("clip_time_pos", "vmae_time_pos")),
            ("s2t_cross", "s2t_q", "s2t_kv", ("clip_space_pos", "vmae_space_pos")),
        ):
            rows = steps if module == "t2s_cross" else patches
            m = f"{b}{module}."
            for position in positions:
                sd[m + position] = rand(rows, bottleneck, scale=0.3)
            sd.update(linear(m + q, bottleneck, bottleneck, bias=False))
            sd[f"{m}{q}_bias"] = rand(bottleneck, scale=0.1)
            sd.update(linear(m + kv, 2 * bottleneck, bottleneck, bias=False))
            sd[f"{m}{kv}_bias"] = rand(2 * bottleneck, scale=0.1)
            sd.update(linear(m + "t2s_proj", bottleneck, bottleneck))
    if ek100_classes:
        sd.update(linear("head_verb", ek100_classes["verb"], width))
        sd.update(linear("head_noun", ek100_classes["noun"], width))
    else:
        for name in ("noun_last_Adapter", "verb_last_Adapter"):
            sd.update(linear(f"{name}.D_fc1", adapter, width))
            sd.update(linear(f"{name}.D_fc2", width, adapter))
        sd.update(linear("head", num_classes, width))
    return sd


def _sinusoid_table(positions, dim):
    table = np.array(
        [
            [p / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)]
            for p in range(positions)
        ]
    )
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.tensor(table, dtype=torch.float32)


def _attend(q, k, v, heads):
    """Softmax attention over the second-to-last axis, heads split by channel."""
    *lead, q_len, channels = q.shape
    k_len, d = k.shape[-2], channels // heads
    q = q.reshape(*lead, q_len, heads, d).transpose(-2, -3)
    k = k.reshape(*lead, k_len, heads, d).transpose(-2, -3)
    v = v.reshape(*lead, k_len, heads, d).transpose(-2, -3)
    weights = torch.softmax((q * d**-0.5) @ k.transpose(-1, -2), dim=-1)
    return (weights @ v).transpose(-2, -3).reshape(*lead, q_len, channels)


def official_cast_forward(sd, video, num_heads):
    """Logits (or `(noun, verb)` logits for EK100) of the official CAST model."""
    sd = {k: v.float() for k, v in sd.items()}

    def ln(x, name, eps):
        return F.layer_norm(
            x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps
        )

    def linear(x, name, bias_key=None):
        bias = sd[bias_key] if bias_key else sd.get(f"{name}.bias")
        return F.linear(x, sd[f"{name}.weight"], bias)

    def adapter(x, name):
        return linear(F.gelu(linear(x, f"{name}.D_fc1")), f"{name}.D_fc2")

    def self_attention(x, weight, bias, out, heads):
        q, k, v = F.linear(x, weight, bias).chunk(3, dim=-1)
        return linear(_attend(q, k, v, heads), out)

    batch, _, _, height, _ = video.shape
    width, _, _, patch = sd["clip_conv1.weight"].shape
    tubelet = sd["patch_embed.proj.weight"].shape[2]
    grid = height // patch
    patches = grid * grid
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})

    # Spatial expert input: frames 1, 3, …; per-frame CLIP embedding.
    s = video[:, :, 1::2]
    steps = s.shape[2]
    s = s.permute(0, 2, 1, 3, 4).reshape(batch * steps, 3, height, height)
    s = F.conv2d(s, sd["clip_conv1.weight"], stride=patch).flatten(2).transpose(1, 2)
    cls = sd["clip_class_embedding"].expand(batch * steps, 1, width)
    s = torch.cat([cls, s], dim=1) + sd["clip_positional_embedding"]
    s = ln(s, "clip_ln_pre", 1e-5)
    # Temporal expert input: tubelets + fixed sinusoid positions.
    t = F.conv3d(
        video,
        sd["patch_embed.proj.weight"],
        sd["patch_embed.proj.bias"],
        stride=(tubelet, patch, patch),
    )
    t = t.flatten(2).transpose(1, 2)
    t = t + _sinusoid_table(t.shape[1], width)

    for i in range(depth):
        b = f"blocks.{i}."
        h = self_attention(
            ln(s, b + "clip_ln_1", 1e-5),
            sd[b + "clip_attn.in_proj_weight"],
            sd[b + "clip_attn.in_proj_bias"],
            b + "clip_attn.out_proj",
            num_heads,
        )
        s = s + h + adapter(h, b + "S_Adapter")
        qkv_bias = torch.cat(
            [sd[b + "attn.q_bias"], torch.zeros(width), sd[b + "attn.v_bias"]]
        )
        h = self_attention(
            ln(t, b + "norm1", 1e-6),
            sd[b + "attn.qkv.weight"],
            qkv_bias,
            b + "attn.proj",
            num_heads,
        )
        t = t + h + adapter(h, b + "T_Adapter")

        zs = ln(linear(s, b + "cross_s_down"), b + "ln_s_cross", 1e-6)
        zt = ln(linear(t, b + "cross_t_down"), b + "ln_t_cross", 1e-6)
        dim = zs.shape[-1]
        # T→S: each CLIP patch attends over time to the VideoMAE tokens at its place.
        m = b + "t2s_cross."
        sp = zs[:, 1:].reshape(batch, steps, patches, dim).transpose(1, 2)
        tp = zt.reshape(batch, steps, patches, dim).transpose(1, 2)
        q = linear(sp + sd[m + "clip_time_pos"], m + "t2s_q", m + "t2s_q_bias")
        k, v = linear(
            tp + sd[m + "vmae_time_pos"], m + "t2s_kv", m + "t2s_kv_bias"
        ).chunk(2, -1)
        o = linear(_attend(q, k, v, num_heads), m + "t2s_proj")
        o = o.transpose(1, 2).reshape(batch * steps, patches, dim)
        cross_s = torch.cat([zs[:, :1], o], dim=1)  # CLS skips the attention
        # S→T: each VideoMAE token attends to the CLIP patches of its frame.
        m = b + "s2t_cross."
        tq = zt.reshape(batch * steps, patches, dim) + sd[m + "vmae_space_pos"]
        sk = zs[:, 1:] + sd[m + "clip_space_pos"]
        q = linear(tq, m + "s2t_q", m + "s2t_q_bias")
        k, v = linear(sk, m + "s2t_kv", m + "s2t_kv_bias").chunk(2, -1)
        cross_t = linear(_attend(q, k, v, num_heads), m + "t2s_proj")
        cross_t = cross_t.reshape(batch, steps * patches, dim)
        s = s + linear(F.gelu(cross_s), b + "cross_s_up")
        t = t + linear(F.gelu(cross_t), b + "cross_t_up")

        sn = ln(s, b + "clip_ln_2", 1e-5)
        fc = linear(sn, b + "clip_mlp.c_fc")
        s = s + linear(fc * torch.sigmoid(1.702 * fc), b + "clip_mlp.c_proj")
        s = s + 0.5 * adapter(sn, b + "S_MLP_Adapter")
        tn = ln(t, b + "norm2", 1e-6)
        t = t + linear(F.gelu(linear(tn, b + "mlp.fc1")), b + "mlp.fc2")
        t = t + 0.5 * adapter(tn, b + "T_MLP_Adapter")

    s_feature = ln(s[:, 0].reshape(batch, steps, width).mean(1), "clip_ln_post", 1e-5)
    t_feature = ln(t.mean(1), "vmae_fc_norm", 1e-6)
    if "head_noun.weight" in sd:
        return linear(s_feature, "head_noun"), linear(t_feature, "head_verb")
    fused = adapter(s_feature, "noun_last_Adapter") + adapter(
        t_feature, "verb_last_Adapter"
    )
    return linear(fused, "head")
