"""Reading checkpoint files, and the errors bad checkpoints give."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from keras_ca2st.conversion import (
    ConversionError,
    convert_ast,
    convert_clip,
    convert_official_cast,
    load_clip_weights,
    read_checkpoint,
)
from keras_ca2st.experts import CLIPVisionEncoder
from tests.conversion import helpers as h
from tests.conversion.reference_cast import official_cast_state_dict


class NotAWeight:
    """A Python object in a pickle: loading it would mean running code."""


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip") / "hf"
    h.tiny_clip_vision(seed=30).save_pretrained(folder)
    return folder


def edited_copy(folder, target, edit):
    """A copy of a save_pretrained folder with its tensors edited."""
    shutil.copytree(folder, target)
    tensors = load_file(os.path.join(folder, "model.safetensors"))
    edit(tensors)
    save_file(tensors, os.path.join(target, "model.safetensors"))
    return target


def test_safetensors_reader_matches_the_safetensors_library(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "f32": torch.from_numpy(rng.standard_normal((3, 4)).astype("float32")),
        "f16": torch.from_numpy(rng.standard_normal((5,)).astype("float16")),
        "bf16": torch.randn(2, 3, dtype=torch.bfloat16),
        "i64": torch.arange(6).reshape(2, 3),
    }
    save_file(tensors, tmp_path / "t.safetensors")
    checkpoint = read_checkpoint(tmp_path / "t.safetensors")
    for key, value in tensors.items():
        np.testing.assert_array_equal(checkpoint.array(key), value.float().numpy())
        assert checkpoint.shape(key) == tuple(value.shape)


def test_sharded_checkpoints_and_wrappers(tmp_path):
    first = {"a.weight": torch.ones(2, 2)}
    second = {"b.weight": torch.full((3,), 2.0)}
    folder = tmp_path / "sharded"
    folder.mkdir()
    save_file(first, folder / "model-00001-of-00002.safetensors")
    save_file(second, folder / "model-00002-of-00002.safetensors")
    index = {
        "weight_map": {
            "a.weight": "model-00001-of-00002.safetensors",
            "b.weight": "model-00002-of-00002.safetensors",
        }
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    checkpoint = read_checkpoint(folder)
    assert sorted(checkpoint.keys()) == ["a.weight", "b.weight"]
    for wrapper in ("model", "module", "state_dict"):
        torch.save({wrapper: first, "epoch": 3}, tmp_path / f"{wrapper}.pth")
        assert list(read_checkpoint(tmp_path / f"{wrapper}.pth").keys()) == ["a.weight"]


def test_missing_key_names_the_key_and_the_file(clip_dir, tmp_path):
    key = "encoder.layers.1.mlp.fc2.bias"
    broken = edited_copy(clip_dir, tmp_path / "broken", lambda t: t.pop(key))
    with pytest.raises(ConversionError) as error:
        convert_clip(broken, num_frames=1, frame_offset=0, frame_stride=1)
    message = str(error.value)
    assert repr(key) in message and "is missing from" in message
    assert str(broken / "model.safetensors") in message


def test_shape_mismatch_names_the_key_and_both_shapes(clip_dir, tmp_path):
    key = "encoder.layers.1.mlp.fc2.weight"

    def narrow(tensors):
        tensors[key] = tensors[key][:, :-1].contiguous()

    broken = edited_copy(clip_dir, tmp_path / "narrow", narrow)
    with pytest.raises(ConversionError) as error:
        convert_clip(broken, num_frames=1, frame_offset=0, frame_stride=1)
    message = str(error.value)
    assert repr(key) in message
    assert "(32, 63)" in message and "(32, 64)" in message


def test_unknown_weights_are_not_dropped_silently(clip_dir, tmp_path):
    def extra(tensors):
        tensors["encoder.layers.0.layer_scale.weight"] = torch.ones(32)

    broken = edited_copy(clip_dir, tmp_path / "extra", extra)
    with pytest.raises(ConversionError, match="does not understand"):
        convert_clip(broken, num_frames=1, frame_offset=0, frame_stride=1)


def test_a_checkpoint_that_does_not_fit_the_expert(clip_dir):
    expert = CLIPVisionEncoder(
        image_size=h.IMAGE,
        num_frames=1,
        frame_offset=0,
        frame_stride=1,
        hidden_dim=h.WIDTH,
        num_layers=h.DEPTH,
        num_heads=4,
        intermediate_dim=h.MLP,
    )
    with pytest.raises(ConversionError, match="num_heads 2 .checkpoint. vs 4"):
        load_clip_weights(expert, read_checkpoint(clip_dir))
    with pytest.raises(ConversionError, match="is not a AST checkpoint"):
        convert_ast(clip_dir)


def test_torchscript_is_opened_only_on_request(tmp_path):
    path = tmp_path / "ViT-tiny.pt"
    h.save_torchscript({"visual.class_embedding": torch.ones(4)}, str(path))
    with pytest.raises(ConversionError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert "TorchScript" in message and "runs the code" in message
    assert "allow_torchscript=True" in message and "--trust-torchscript" in message
    checkpoint = read_checkpoint(path, allow_torchscript=True)
    np.testing.assert_array_equal(checkpoint.array("visual.class_embedding"), 1.0)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "object.pth"
    torch.save({"model": {"a": torch.ones(1)}, "extra": NotAWeight()}, path)
    with pytest.raises(ConversionError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert "NotAWeight" in message and "never runs code" in message
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ConversionError, match="holds no state dict"):
        read_checkpoint(tmp_path / "list.pth")


def test_unreadable_files(tmp_path):
    with pytest.raises(ConversionError, match="does not exist"):
        read_checkpoint(tmp_path / "nowhere.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ConversionError, match="safetensors"):
        read_checkpoint(tmp_path / "bad.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="holds no single checkpoint"):
        read_checkpoint(tmp_path / "empty")


def test_official_cast_missing_key_names_the_key_and_file(tmp_path):
    state = official_cast_state_dict(seed=4)
    del state["blocks.1.s2t_cross.vmae_space_pos"]
    path = tmp_path / "cast.pth"
    torch.save({"module": state}, path)
    with pytest.raises(ConversionError) as error:
        convert_official_cast(path, num_heads=2)
    message = str(error.value)
    assert "'blocks.1.s2t_cross.vmae_space_pos' is missing from" in message
    assert str(path) in message
