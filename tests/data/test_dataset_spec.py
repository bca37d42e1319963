"""`VideoDataset(spec=...)`: the model's clip spec decides what the batches hold.

The Keras backend comes from `KERAS_BACKEND`; CI runs this file once per
backend.
"""

import keras
import numpy as np
import pytest
from media_helpers import click_track

from keras_ca2st.data import (
    AudioAugment,
    ClipSpec,
    PaddedBatches,
    RandAugment,
    VideoDataset,
    VideoRecord,
    pad_batches,
)
from keras_ca2st.experts import ASTEncoder, VideoMAEEncoder
from keras_ca2st.models import CA2STBackbone, VideoClassifier

ALL_INPUTS = ("video", "audio", "video_times", "audio_times")


@pytest.fixture
def records(make_video):
    """Five 32x40 barcode videos (3 s at 25 fps) with a click each."""
    return [
        VideoRecord(
            make_video(
                num_frames=75,
                height=32,
                width=40,
                audio=click_track(3.0, [0.4 + 0.5 * label], 16000),
            ),
            label % 3,
        )
        for label in range(5)
    ]


def _tiny_model():
    """VideoMAE with 4-frame tubelets and AST on 64 mel bins, joined by B-CA."""
    width = dict(hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64)
    experts = {
        "temporal": VideoMAEEncoder(
            image_size=32, patch_size=16, num_frames=8, tubelet_size=4, **width
        ),
        "audio": ASTEncoder(
            num_time_frames=64, frequency_bins=64, patch_size=16, stride=16, **width
        ),
    }
    backbone = CA2STBackbone(
        experts=experts,
        pairs=[{"experts": ["temporal", "audio"]}],
        cross_attention_heads=2,
    )
    return VideoClassifier(backbone, num_classes=3)


def _options(tmp_path, **kwargs):
    options = dict(batch_size=2, seed=3, bad_sample_log=tmp_path / "bad.jsonl")
    return {**options, **kwargs}


def test_batches_fit_a_model_with_64_mel_bins_and_4_frame_intervals(records, tmp_path):
    model = _tiny_model()
    spec = model.backbone.clip_spec
    assert (spec.mel_bins, spec.frames_per_interval) == (64, 4)
    val = VideoDataset(records, **_options(tmp_path, mode="val", spec=spec))
    inputs, labels, weights = val[0]
    expected = {
        name: (2, *shape) for name, shape in model.backbone.input_shapes().items()
    }
    assert {name: value.shape for name, value in inputs.items()} == expected
    assert inputs["audio"].shape == (2, 64, 64)
    assert inputs["video_times"].shape == (2, 2, 2)
    # Each interval spans 4 frames of 40 ms apart (dense stride 4): 13 frame
    # periods, from the first frame's start to the fourth one's end.
    spans = inputs["video_times"][..., 1] - inputs["video_times"][..., 0]
    np.testing.assert_allclose(spans, (3 * 4 + 1) * 0.04, atol=1e-4)
    logits = model.predict(val, verbose=0)
    assert logits.shape == (5, 3) and np.all(np.isfinite(logits))


def test_a_spec_gives_the_batches_of_the_same_geometry_without_one(records, tmp_path):
    options = _options(
        tmp_path,
        rand_augment=RandAugment(num_ops=2),
        audio_augment=AudioAugment(time_mask=10),
    )
    spec = ClipSpec(ALL_INPUTS, num_frames=8, crop_size=24, audio_frames=90)
    with_spec = VideoDataset(records, spec=spec, **options)
    without = VideoDataset(
        records, num_frames=8, crop_size=24, audio_frames=90, **options
    )
    assert without.spec == spec
    for batch in range(len(with_spec)):
        for name in ALL_INPUTS:
            np.testing.assert_array_equal(
                with_spec[batch][0][name], without[batch][0][name]
            )


def test_only_the_inputs_of_the_spec_are_made(records, tmp_path):
    options = _options(tmp_path, mode="test", num_test_clips=2, num_test_crops=1)
    lavish = ClipSpec(
        ("video", "audio"),
        num_frames=8,
        crop_size=24,
        frames_per_interval=1,
        audio_frames=90,
    )
    assert list(VideoDataset(records, spec=lavish, **options)[0][0]) == [
        "video",
        "audio",
    ]
    # An audio model's window is centred on the clip a video model would see
    # (16 frames unless told): the same features as before, nothing else.
    audio_only = VideoDataset(
        records, spec=ClipSpec(("audio",), audio_frames=90), **options
    )
    everything = VideoDataset(records, audio_frames=90, **options)
    inputs = audio_only[0][0]
    assert list(inputs) == ["audio"] and audio_only.num_frames == 16
    np.testing.assert_array_equal(inputs["audio"], everything[0][0]["audio"])


def test_geometry_that_contradicts_the_spec_is_refused(records, tmp_path):
    spec = ClipSpec(("video",), num_frames=8, crop_size=24)
    with pytest.raises(ValueError, match="num_frames=16 disagrees"):
        VideoDataset(records, spec=spec, num_frames=16, **_options(tmp_path))
    agreeing = VideoDataset(
        records, spec=spec, num_frames=8, crop_size=24, **_options(tmp_path)
    )
    assert (agreeing.num_frames, agreeing.crop_size, agreeing.audio_frames) == (
        8,
        24,
        None,
    )
    # Settings belong to one piece each; the dataset only reads them.
    assert agreeing.sampling == agreeing.decoder.sampling == "dense"
    assert agreeing.num_test_crops == agreeing.sampler.num_test_crops == 3
    with pytest.raises(AttributeError, match="fixed when the dataset is built"):
        agreeing.crop_size = 32


def test_padded_batches_fill_up_with_zero_weight_copies(records, tmp_path):
    val = VideoDataset(records, **_options(tmp_path, mode="val", batch_size=4))
    assert pad_batches(val) is val and pad_batches(val, multiple_of=1) is val
    padded = pad_batches(val, multiple_of=4)  # the last batch holds 1 video
    assert isinstance(padded, PaddedBatches) and len(padded) == 2
    inputs, labels, weights = padded[1]
    assert weights.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert labels.tolist() == [records[4].label] * 4
    np.testing.assert_array_equal(inputs["video"][3], val[1][0]["video"][0])
    full = padded[0]
    np.testing.assert_array_equal(full[2], val[0][2])  # full batches unchanged
    train = VideoDataset(records, **_options(tmp_path, batch_size=3))  # no weights
    inputs, labels, weights = PaddedBatches(train, multiple_of=2)[0]
    assert weights.tolist() == [1.0, 1.0, 1.0, 0.0]
    assert keras.tree.flatten(labels)[0].shape == (4,)
