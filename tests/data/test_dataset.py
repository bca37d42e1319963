"""`VideoDataset` on real files: views, alignment, determinism, bad samples.

The Keras backend comes from `KERAS_BACKEND`; CI runs this file once per
backend (torch, jax, tensorflow).
"""

import os

import keras
import numpy as np
import pytest
from media_helpers import click_track, read_barcodes

from keras_ca2st.data import (
    AudioAugment,
    BadSampleReport,
    Mixup,
    RandAugment,
    VideoDataset,
    VideoRecord,
    sample_frame_indices,
)
from keras_ca2st.data.fbank import AUDIOSET_MEAN, AUDIOSET_STD, LOG_FLOOR
from keras_ca2st.data.transforms import IMAGENET_MEAN, IMAGENET_STD

SIZE = 64  # barcode videos are 64x64, so a 64 test crop is the whole frame


def _pixels(video):
    """Undoes the ImageNet normalisation (back to 0..255)."""
    return (video * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)) * 255.0


@pytest.fixture
def av_videos(make_video):
    """Four 64x64 barcode videos (4 s at 25 fps) with clicks, labels 0..3."""
    records = []
    for label in range(4):
        clicks = [0.5 + 0.3 * label, 3.1]
        audio = click_track(4.0, clicks, 48000, channels=2)
        path = make_video(
            num_frames=100,
            fps=25,
            height=SIZE,
            width=SIZE,
            audio=audio,
            audio_sample_rate=48000,
        )
        records.append(VideoRecord(path, label))
    return records


def _dataset(records, tmp_path, **kwargs):
    options = dict(
        batch_size=2,
        num_frames=16,
        crop_size=SIZE,
        audio_frames=200,
        seed=3,
        bad_sample_log=tmp_path / "bad.jsonl",
    )
    options.update(kwargs)
    return VideoDataset(records, **options)


@pytest.mark.parametrize("sampling", ["dense", "uniform"])
def test_test_views_decode_the_expected_frames(av_videos, tmp_path, sampling):
    dataset = _dataset(
        av_videos[:1],
        tmp_path,
        mode="test",
        sampling=sampling,
        num_test_clips=2,
        num_test_crops=3,
        batch_size=6,
        audio_frames=None,
    )
    assert len(dataset) == 1
    inputs, labels, weights = dataset[0]
    assert inputs["video"].shape == (6, 16, SIZE, SIZE, 3)
    assert labels.tolist() == [0] * 6 and weights.tolist() == [1.0] * 6
    for view in range(6):
        clip = view // 3
        expected = sample_frame_indices(100, sampling, clip_index=clip, num_clips=2)
        assert read_barcodes(_pixels(inputs["video"][view])) == expected.tolist()
    if sampling == "dense":
        assert read_barcodes(_pixels(inputs["video"][0]))[:3] == [0, 4, 8]
        assert read_barcodes(_pixels(inputs["video"][5]))[-1] == 96


def test_train_clips_are_strided_windows(av_videos, tmp_path):
    dataset = _dataset(
        av_videos,
        tmp_path,
        batch_size=4,
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        horizontal_flip=False,
        audio_frames=None,
    )
    inputs, labels = dataset[0]
    assert sorted(labels.tolist()) == [0, 1, 2, 3]
    starts = []
    for clip in inputs["video"]:
        frames = read_barcodes(_pixels(clip))
        assert np.all(np.diff(frames) == 4)
        starts.append(frames[0])
    dataset.on_epoch_end()
    later = [read_barcodes(_pixels(c))[0] for c in dataset[0][0]["video"]]
    assert starts != later, "a new epoch draws new windows"


def test_audio_inputs_are_aligned_with_the_clip(av_videos, tmp_path):
    dataset = _dataset(
        av_videos,
        tmp_path,
        mode="test",
        num_test_clips=2,
        num_test_crops=1,
        batch_size=8,
        audio_frames=200,
    )
    inputs, labels, _ = dataset[0]
    assert inputs["audio"].shape == (8, 200, 128)
    assert inputs["video_times"].shape == inputs["audio_times"].shape == (8, 8, 2)
    for view in range(8):
        record = av_videos[view // 2]
        indices = sample_frame_indices(100, "dense", clip_index=view % 2, num_clips=2)
        frame_times = indices / 25.0
        intervals = inputs["video_times"][view]
        # Tubelet t spans frame 2t's time to the end of frame 2t + 1.
        origin = frame_times[0] - intervals[0, 0]
        np.testing.assert_allclose(
            intervals[:, 0], frame_times[::2] - origin, atol=1e-5
        )
        np.testing.assert_allclose(
            intervals[:, 1], frame_times[1::2] + 0.04 - origin, atol=1e-5
        )
        # The 2 s window is centred on the clip and stays inside the 4 s track.
        clip_centre = (frame_times[0] + frame_times[-1] + 0.04) / 2
        assert origin == pytest.approx(np.clip(clip_centre - 1.0, 0.0, 2.0), abs=1e-4)
        np.testing.assert_allclose(
            inputs["audio_times"][view, :, 1], 0.25 * np.arange(1, 9)
        )
        # Each click shows up as a loud fbank frame at (time - origin) / 10 ms.
        loudness = inputs["audio"][view].mean(axis=1)
        loud_frames = np.flatnonzero(loudness > loudness.min() + 0.5)
        clicks = [0.5 + 0.3 * record.label, 3.1]
        expected = [
            (t - origin) / 0.01 for t in clicks if 0 <= (t - origin) / 0.01 < 198
        ]
        assert expected, "every window contains a click"
        for frame in expected:
            assert np.min(np.abs(loud_frames - frame)) <= 2
        onsets = loud_frames[np.r_[True, np.diff(loud_frames) > 5]]
        assert len(onsets) == len(expected)


def test_training_batches_are_deterministic(av_videos, tmp_path):
    options = dict(
        rand_augment=RandAugment(),
        audio_augment=AudioAugment(time_mask=20),
        mixup=Mixup(4, prob=1.0),
    )
    first = _dataset(av_videos, tmp_path, **options)
    second = _dataset(av_videos, tmp_path, **options)
    other_seed = _dataset(av_videos, tmp_path, seed=4, **options)
    # Order of requests does not matter (workers finish in any order).
    later = second[1]
    earlier = second[0]
    for (x1, y1), (x2, y2) in [(first[0], earlier), (first[1], later)]:
        for key in x1:
            np.testing.assert_array_equal(x1[key], x2[key])
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0]["video"], other_seed[0][0]["video"])
    assert first[0][1].shape == (2, 4) and first[0][1].dtype == np.float32


def test_short_and_variable_frame_rate_videos(make_video, tmp_path):
    short = make_video(num_frames=10, fps=25, height=SIZE, width=SIZE)
    times = np.cumsum(np.r_[0.0, np.random.default_rng(0).uniform(0.02, 0.1, 79)])
    vfr = make_video(
        num_frames=80,
        height=SIZE,
        width=SIZE,
        frame_times=times,
        audio=click_track(times[-1] + 0.2, [1.0], 16000),
    )
    records = [VideoRecord(short, 0), VideoRecord(vfr, 1)]
    dataset = _dataset(
        records,
        tmp_path,
        mode="val",
        missing_audio="silence",
        batch_size=2,
        audio_frames=100,
    )
    inputs, labels, weights = dataset[0]
    assert weights.tolist() == [1.0, 1.0]
    # 10 frames: every 4th frame, then the last one repeated.
    assert read_barcodes(_pixels(inputs["video"][0])) == [0, 4, 8] + [8] * 13
    vfr_indices = sample_frame_indices(80, "dense")
    assert read_barcodes(_pixels(inputs["video"][1])) == vfr_indices.tolist()
    intervals = inputs["video_times"][1]
    origin = times[vfr_indices[0]] - intervals[0, 0]
    np.testing.assert_allclose(
        intervals[:, 0], times[vfr_indices[::2]] - origin, atol=1e-4
    )
    # The short video has no audio: silence, i.e. the log floor everywhere.
    silence = (np.log(LOG_FLOOR) - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)
    np.testing.assert_allclose(inputs["audio"][0], silence, atol=1e-5)


def _bad_files(tmp_path, make_video):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    good = make_video(num_frames=40, height=SIZE, width=SIZE)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(good, "rb").read()[:1500])
    silent = make_video(num_frames=40, height=SIZE, width=SIZE)  # no audio stream
    return str(empty), str(truncated), silent


def test_bad_samples_are_substituted_and_reported(av_videos, make_video, tmp_path):
    empty, truncated, silent = _bad_files(tmp_path, make_video)
    records = [
        av_videos[0],
        VideoRecord(empty, 7),
        VideoRecord(truncated, 8),
        av_videos[1],
        VideoRecord(silent, 9),
        av_videos[2],
    ]
    dataset = _dataset(records, tmp_path, batch_size=3, shuffle=False, audio_frames=100)
    labels = np.concatenate([dataset[i][1] for i in range(len(dataset))])
    # Each bad sample is replaced by the next good one in the epoch order.
    assert labels.tolist() == [0, 1, 1, 1, 2, 2]
    reasons = dict(dataset.bad_samples)
    assert set(reasons) == {empty, truncated, silent}
    assert "VideoDecodeError" in reasons[empty] and "empty" in reasons[empty]
    assert "truncated or corrupt" in reasons[truncated]
    assert (
        "AudioDecodeError" in reasons[silent] and "no audio stream" in reasons[silent]
    )
    entry = dataset.bad_sample_entries()[0]
    assert entry["epoch"] == 0 and entry["source"] == ""

    # The same silent file is fine when silence is asked for.
    lenient = _dataset(
        records[3:5],
        tmp_path / "x",
        missing_audio="silence",
        shuffle=False,
        bad_sample_log=tmp_path / "lenient.jsonl",
    )
    assert lenient[0][1].tolist() == [1, 9] and lenient.bad_samples == []


def test_evaluation_gives_bad_samples_zero_weight(av_videos, make_video, tmp_path):
    empty, _, _ = _bad_files(tmp_path, make_video)
    records = [av_videos[0], VideoRecord(empty, 5)]
    dataset = _dataset(
        records, tmp_path, mode="test", num_test_clips=2, num_test_crops=1, batch_size=4
    )
    inputs, labels, weights = dataset[0]
    assert labels.tolist() == [0, 0, 5, 5]
    assert weights.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert np.all(inputs["video"][2:] == 0.0)
    strict = _dataset(records, tmp_path, mode="val", bad_sample_policy="raise")
    with pytest.raises(ValueError, match="empty"):
        strict[0]


def test_everything_failing_stops_the_run(make_video, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    dataset = _dataset([VideoRecord(str(empty), 0)] * 4, tmp_path, max_substitutions=3)
    with pytest.raises(RuntimeError, match="not a single bad file"):
        dataset[0]


def test_segments_and_epic_kitchens_labels(make_video, tmp_path):
    path = make_video(num_frames=100, fps=25, height=SIZE, width=SIZE)
    records = [
        VideoRecord(path, {"verb": 1, "noun": 4}, start=1.0, end=3.0),
        VideoRecord(path, {"verb": 2, "noun": 0}, start=3.9, end=5.0),
    ]
    dataset = _dataset(
        records, tmp_path, mode="val", sampling="uniform", audio_frames=None
    )
    inputs, labels, _ = dataset[0]
    assert labels["verb"].tolist() == [1, 2] and labels["noun"].tolist() == [4, 0]
    # Segment 1 s - 3 s is frames 25..74: segment centres within it.
    expected = 25 + sample_frame_indices(50, "uniform")
    assert read_barcodes(_pixels(inputs["video"][0])) == expected.tolist()
    # Segment 3.9 s - 5 s holds only frames 98 and 99 (t = 3.92, 3.96).
    assert read_barcodes(_pixels(inputs["video"][1])) == [98] * 8 + [99] * 8
    train = _dataset(
        records,
        tmp_path,
        audio_frames=None,
        mixup=Mixup({"verb": 3, "noun": 5}, prob=1.0),
    )
    soft = train[0][1]
    assert soft["verb"].shape == (2, 3) and soft["noun"].shape == (2, 5)


def _tiny_audio_visual_model(num_classes):
    video = keras.Input((16, SIZE, SIZE, 3), name="video")
    audio = keras.Input((100, 128), name="audio")
    video_times = keras.Input((8, 2), name="video_times")
    audio_times = keras.Input((8, 2), name="audio_times")
    pooled = keras.layers.Concatenate()(
        [
            keras.layers.GlobalAveragePooling3D()(video),
            keras.layers.GlobalAveragePooling1D()(audio),
            keras.layers.Flatten()(video_times),
            keras.layers.Flatten()(audio_times),
        ]
    )
    logits = keras.layers.Dense(num_classes)(pooled)
    inputs = {
        "video": video,
        "audio": audio,
        "video_times": video_times,
        "audio_times": audio_times,
    }
    return keras.Model(inputs, logits)


@pytest.mark.parametrize("use_multiprocessing", [False, True])
def test_feeds_model_fit_on_the_current_backend(
    av_videos, make_video, tmp_path, capsys, use_multiprocessing
):
    empty, _, _ = _bad_files(tmp_path, make_video)
    records = av_videos + [VideoRecord(empty, 2)]
    train = _dataset(
        records,
        tmp_path,
        batch_size=2,
        audio_frames=100,
        rand_augment=RandAugment(num_ops=2),
        mixup=Mixup(4, prob=0.5),
        audio_augment=AudioAugment(time_mask=10),
        workers=2,
        use_multiprocessing=use_multiprocessing,
    )
    val = _dataset(
        records,
        tmp_path,
        mode="val",
        batch_size=5,
        audio_frames=100,
        one_hot_labels=True,
        num_classes=4,
        bad_sample_log=tmp_path / "val_bad.jsonl",
    )
    model = _tiny_audio_visual_model(4)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    report = BadSampleReport(train, val)
    history = model.fit(
        train,
        validation_data=val,
        epochs=2,
        shuffle=False,
        callbacks=[report],
        verbose=0,
    )
    assert len(history.history["loss"]) == 2
    assert np.all(np.isfinite(history.history["loss"]))
    # The empty file was met in every epoch (recorded by the workers, which
    # may be other processes) and in every validation pass; all reported.
    train_entries = train.bad_sample_entries()
    assert {entry["path"] for entry in train_entries} == {empty}
    assert len({entry["epoch"] for entry in train_entries}) >= 2
    assert {entry["path"] for entry in val.bad_sample_entries()} == {empty}
    printed = capsys.readouterr().out
    for epoch in (1, 2):
        assert f"Epoch {epoch}: skipped" in printed
    assert "file(s) in training data" in printed and "file(s) in val data" in printed
    assert "empty.mp4" in printed and "file is empty" in printed
    assert len(report.history) == len(train_entries) + len(val.bad_sample_entries())
    predictions = model.predict(val, verbose=0)
    assert predictions.shape == (5, 4)


def test_backend_under_test_is_the_configured_one():
    # Guards the CI matrix: the test run really exercises KERAS_BACKEND.
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


def test_configuration_errors_are_explained(av_videos, tmp_path):
    with pytest.raises(ValueError, match="no full batch"):
        _dataset(av_videos, tmp_path, batch_size=8)
    with pytest.raises(ValueError, match="mode"):
        _dataset(av_videos, tmp_path, mode="eval")
    with pytest.raises(ValueError, match="mixup is a training augmentation"):
        _dataset(av_videos, tmp_path, mode="val", mixup=Mixup(4))
    with pytest.raises(ValueError, match="num_classes"):
        _dataset(av_videos, tmp_path, one_hot_labels=True)
    with pytest.raises(ValueError, match="empty"):
        _dataset([], tmp_path)


def test_default_bad_sample_log_is_removed_with_the_dataset(av_videos):
    import gc

    dataset = VideoDataset(av_videos, batch_size=2)
    log = dataset.bad_sample_log
    assert os.path.exists(log)
    del dataset
    gc.collect()
    assert not os.path.exists(log)


def test_shards_split_each_epoch_like_a_distributed_sampler(av_videos, tmp_path):
    records = av_videos + [VideoRecord(av_videos[0].path, 0)]  # 5 videos
    options = dict(audio_frames=None, num_frames=4)
    full = _dataset(records, tmp_path, batch_size=2, **options)
    shards = [
        _dataset(
            records, tmp_path, batch_size=1, num_shards=2, shard_index=i, **options
        )
        for i in range(2)
    ]
    # The fifth video is the remainder: ranks must run the same number of steps.
    assert [len(shard) for shard in shards] == [2, 2] and len(full) == 2
    orders = []
    for epoch in (1, 2):
        for dataset in (full, *shards):
            dataset.set_epoch(epoch)
        orders.append(full.epoch_order().tolist())
        for k in range(2):  # batch k of both shards together = global batch k
            together = [shard[k] for shard in shards]
            expected_inputs, expected_labels = full[k]
            np.testing.assert_array_equal(
                np.concatenate([inputs["video"] for inputs, _ in together]),
                expected_inputs["video"],
            )
            np.testing.assert_array_equal(
                np.concatenate([labels for _, labels in together]), expected_labels
            )
    assert orders[0] != orders[1]


def test_evaluation_shards_give_every_video_to_one_rank(av_videos, tmp_path):
    records = av_videos + [VideoRecord(av_videos[0].path, 0)]
    shards = [
        _dataset(
            records,
            tmp_path,
            mode="test",
            num_test_clips=2,
            num_test_crops=1,
            batch_size=4,
            audio_frames=None,
            num_shards=2,
            shard_index=i,
        )
        for i in range(2)
    ]
    assert [shard.labels for shard in shards] == [[0, 2, 0], [1, 3]]
    assert shards[0].view_record_indices.tolist() == [0, 0, 1, 1, 2, 2]
    assert shards[1].view_record_indices.tolist() == [0, 0, 1, 1]
    assert [len(shard) for shard in shards] == [2, 1]
    _, labels, _ = shards[1][0]
    assert labels.tolist() == [1, 1, 3, 3]
    with pytest.raises(ValueError, match="shard_index"):
        _dataset(records, tmp_path, num_shards=2, shard_index=2)


def test_a_folder_of_good_and_broken_files_trains_and_counts_the_broken_ones(
    av_videos, tmp_path, capsys
):
    from tests.bad_inputs.corpus import aac, damaged, encode, h264, tone

    nan_samples = tone(16000 * 4, 16000, 1)
    nan_samples[20000:20100] = np.nan
    video = h264(width=SIZE, height=SIZE, frames=100)
    readable = {  # unusual but valid: decoded, not skipped
        "surround_7_1.mp4": encode(
            tmp_path / "surround_7_1.mp4",
            video=video,
            audio=aac(rate=48000, layout="7.1", channels=8, seconds=4.0),
        ),
        "stream.ts": encode(
            tmp_path / "stream.ts",
            container_format="mpegts",
            video=video,
            audio=aac(seconds=4.0),
        ),
    }
    broken = {
        "nan_audio.mkv": encode(
            tmp_path / "nan_audio.mkv",
            video=video,
            audio={
                "codec": "pcm_f32le",
                "rate": 16000,
                "layout": "mono",
                "samples": nan_samples,
            },
        ),
        "half.mp4": damaged(av_videos[0].path, tmp_path / "half.mp4", "truncate:0.3"),
        "noise.mp4": damaged(av_videos[0].path, tmp_path / "noise.mp4", "zero_header"),
    }
    (tmp_path / "empty.mp4").write_bytes(b"")
    broken["empty.mp4"] = str(tmp_path / "empty.mp4")
    records = av_videos + [
        VideoRecord(path, label % 4)
        for label, path in enumerate([*readable.values(), *broken.values()])
    ]
    train = _dataset(records, tmp_path, batch_size=2, audio_frames=100)
    for index in range(len(train)):
        inputs, _ = train[index]
        assert all(np.isfinite(value).all() for value in inputs.values())
    model = _tiny_audio_visual_model(4)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    train.set_epoch(1)
    history = model.fit(
        train, epochs=1, shuffle=False, callbacks=[BadSampleReport(train)], verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()
    skipped = {os.path.basename(entry["path"]) for entry in train.bad_sample_entries()}
    assert skipped == set(broken)
    printed = capsys.readouterr().out
    assert f"from {len(broken)} file(s) in training data" in printed
