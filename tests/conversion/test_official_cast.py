"""The authors' fine-tuned CAST checkpoints: converted models reproduce their logits.

The checkpoints are written in the official layout with random weights; the
reference logits come from `reference_cast.official_cast_forward`, an
independent PyTorch implementation of the official model that reads the
checkpoint's own names and takes the clip channels-first.
"""

import argparse

import keras_hub
import numpy as np
import pytest
import torch

from keras_ca2st import CAST, CA2STBackbone
from keras_ca2st.cli.main import main
from keras_ca2st.conversion import read_checkpoint
from keras_ca2st.conversion.convert_cast import official_cast_backbone_config
from keras_ca2st.presets import (
    CorruptPresetError,
    PresetWeightsUnavailableError,
    convert_official_cast_preset,
    register_preset,
    unregister_preset,
)
from tests.conversion import helpers as h
from tests.conversion.reference_cast import (
    official_cast_forward,
    official_cast_state_dict,
)
from tests.test_case import BACKEND, to_numpy

TOLERANCE = 1e-4


def reference_logits(state, video):
    clip = torch.from_numpy(np.ascontiguousarray(video.transpose(0, 4, 1, 2, 3)))
    with torch.no_grad():  # (B, 3, T, H, W), as the official model reads it
        return official_cast_forward(state, clip, num_heads=h.HEADS)


def test_k400_layout_checkpoint_converts_with_the_cli(tmp_path):
    state = official_cast_state_dict(seed=1, num_classes=5)
    checkpoint = tmp_path / "mp_rank_00_model_states.pt"
    # DeepSpeed layout: the model under "module", plus training state.
    torch.save(
        {"module": state, "args": argparse.Namespace(lr=1e-3), "ds_version": "0.9"},
        checkpoint,
    )
    output = tmp_path / "cast_k400_tiny"
    code = main(
        ["convert", "official-cast", str(checkpoint), str(output), "--num-heads", "2"]
    )
    assert code == 0
    model = CAST.from_preset(str(output))
    assert model.heads["logits"].units == 5
    video = h.video_batch(np.random.default_rng(0))
    logits = to_numpy(model.predict({"video": video}, verbose=0))
    expected = reference_logits(state, video).numpy()
    error = float(np.abs(logits - expected).max())
    print(f"\nPARITY backend={BACKEND} official_cast/k400 logits={error:.2e}")
    assert error <= TOLERANCE
    # Not a vacuous match: the logits depend on the clip and on every stream.
    assert np.abs(expected[0] - expected[1]).max() > 1e-2
    position = "blocks.0.t2s_cross.vmae_time_pos"  # a B-CA weight
    shifted = state | {position: state[position] + torch.randn(state[position].shape)}
    assert np.abs(reference_logits(shifted, video).numpy() - expected).max() > 1e-3
    # The preset is verified before use: a damaged file is reported.
    task_weights = output / "task.weights.h5"
    intact = task_weights.read_bytes()
    middle = len(intact) // 2
    task_weights.write_bytes(
        intact[:middle] + b"\xffdamaged\xff" + intact[middle + 9 :]
    )
    with pytest.raises(CorruptPresetError, match="task.weights.h5 does not match"):
        CAST.from_preset(str(output))
    task_weights.write_bytes(intact)
    # The preset is keras-hub's format: keras-hub's own loader reads it.
    backbone = keras_hub.models.Backbone.from_preset(str(output))
    assert isinstance(backbone, CA2STBackbone)
    features = to_numpy(backbone({"video": video}))
    expected = to_numpy(model.backbone({"video": video}))
    for name in ("spatial", "temporal"):
        np.testing.assert_allclose(features[name], expected[name], atol=1e-5)


@pytest.fixture
def tiny_finetuned_preset(tmp_path, monkeypatch):
    """A registered fine-tuned CAST preset with a tiny EK100 architecture."""
    monkeypatch.setenv("KERAS_CA2ST_CACHE", str(tmp_path / "cache"))
    state = official_cast_state_dict(seed=2, ek100_classes={"verb": 4, "noun": 6})
    state = {k: v.half() for k, v in state.items()}  # DeepSpeed fp16 weights
    checkpoint = tmp_path / "ek100.pth"
    torch.save({"model": state, "epoch": 49}, checkpoint)
    backbone = official_cast_backbone_config(
        read_checkpoint(checkpoint), num_heads=h.HEADS
    )
    register_preset(
        "cast_tiny_ek100_test",
        {
            "model_class": "CAST",
            "description": "tiny EK100-layout CAST for tests",
            "backbone": backbone,
            "task": {"num_classes": {"verb": 4, "noun": 6}},
            "weights": {
                "kind": "fine_tuned",
                "sources": {"checkpoint": {"url": "https://example.org/ek100.pth"}},
            },
        },
    )
    yield state, checkpoint
    unregister_preset("cast_tiny_ek100_test")


def test_ek100_checkpoint_as_registered_fine_tuned_preset(tiny_finetuned_preset):
    state, checkpoint = tiny_finetuned_preset
    # Before conversion: one clear error naming where to get it and how to convert.
    with pytest.raises(PresetWeightsUnavailableError) as error:
        CAST.from_preset("cast_tiny_ek100_test")
    message = str(error.value)
    assert "https://example.org/ek100.pth" in message
    assert (
        "ca2st convert official-cast CHECKPOINT.pth --preset cast_tiny_ek100_test"
        in message
    )
    random_init = CAST.from_preset("cast_tiny_ek100_test", load_weights=False)
    assert set(random_init.heads) == {"verb", "noun"}
    convert_official_cast_preset(checkpoint, "cast_tiny_ek100_test")
    model = CAST.from_preset("cast_tiny_ek100_test")
    video = h.video_batch(np.random.default_rng(1))
    logits = to_numpy(model.predict({"video": video}, verbose=0))
    noun, verb = reference_logits(state, video)
    errors = {
        "noun": float(np.abs(logits["noun"] - noun.numpy()).max()),
        "verb": float(np.abs(logits["verb"] - verb.numpy()).max()),
    }
    print(
        f"\nPARITY backend={BACKEND} official_cast/ek100_fp16 "
        + " ".join(f"{k}={v:.2e}" for k, v in errors.items())
    )
    assert max(errors.values()) <= TOLERANCE
    # A checkpoint whose heads do not fit the preset is refused.
    other = official_cast_state_dict(seed=3, num_classes=7)
    torch.save({"model": other}, checkpoint.parent / "k400.pth")
    with pytest.raises(ValueError, match="heads for 7 classes"):
        convert_official_cast_preset(
            checkpoint.parent / "k400.pth", "cast_tiny_ek100_test"
        )
