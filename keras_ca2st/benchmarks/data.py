"""Decode throughput of the data pipeline, and how many workers feed a GPU.

Writes a few Kinetics-like test videos (H.264, 340x256, 30 fps, 48 kHz stereo
AAC by default) to a temporary directory, then measures, in one process:

- video: open + dense-sample + decode 16 frames;
- video + transforms: the above plus the training crop/flip/normalise
  (and RandAugment with `--rand-augment`);
- audio: open + decode and resample a window + Kaldi fbank + normalise;
- full sample: one training view of `VideoDataset` (video and audio);

then the full-sample throughput of a pool of worker processes, and finally
the number of workers needed to keep up with a GPU step of the given time:
`ceil(batch_size / step_seconds / clips_per_second_per_worker)`.

Each stage is also printed as a ratio to the cost of video decoding alone,
measured in the same run, and the pool as its speed-up over one worker;
the environment (CPU count, library versions) heads the report.

Example:

    ca2st bench data --gpu-step-seconds 0.5 --batch-size 8
    python -m keras_ca2st.benchmarks.data --num-videos 2 --seconds 2
"""

import argparse
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time

import numpy as np

from keras_ca2st.data import (
    AudioReader,
    RandAugment,
    VideoDataset,
    VideoReader,
    VideoRecord,
    kaldi_fbank,
    normalize_fbank,
    pad_or_crop_frames,
    sample_frame_indices,
    train_clip_transform,
    write_mp4,
)
from keras_ca2st.data.fbank import num_samples_for_frames


def make_videos(directory, args):
    """Writes `args.num_videos` textured, moving test clips with audio."""
    rng = np.random.default_rng(0)
    num_frames = int(args.seconds * args.fps)
    paths = []
    for index in range(args.num_videos):
        texture = rng.integers(0, 256, (args.height, args.width * 2, 3), np.uint8)
        texture = (texture // 32 * 32).astype(np.uint8)  # blocky: codec-friendly
        frames = np.stack(
            [
                np.roll(texture, 3 * t, axis=1)[:, : args.width]
                for t in range(num_frames)
            ]
        )
        time_axis = np.arange(int(args.seconds * args.sample_rate)) / args.sample_rate
        audio = 0.3 * np.stack(
            [
                np.sin(2 * np.pi * 440 * time_axis),
                rng.standard_normal(time_axis.shape[0]) * 0.1,
            ]
        )
        path = os.path.join(directory, f"clip_{index}.mp4")
        write_mp4(
            path,
            frames,
            fps=args.fps,
            audio=audio,
            audio_sample_rate=args.sample_rate,
            qp=23,
            keyframe_interval=args.keyframe_interval,
        )
        paths.append(path)
    return paths


def rate(function, items, repeats):
    """Calls per second of `function` over `items`, `repeats` passes."""
    function(items[0])  # warm-up (imports, caches)
    start = time.perf_counter()
    count = 0
    for _ in range(repeats):
        for item in items:
            function(item)
            count += 1
    return count / (time.perf_counter() - start)


def _load_view(arguments):
    dataset, view_index = arguments
    dataset.load_view(view_index)


def pool_rate(dataset, workers, repeats):
    """Views per second loaded by `workers` processes."""
    jobs = [
        (dataset, i % len(dataset.views)) for i in range(len(dataset.views) * repeats)
    ]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        pool.map(_load_view, jobs[:workers])  # warm-up
        start = time.perf_counter()
        pool.map(_load_view, jobs, chunksize=1)
        return len(jobs) / (time.perf_counter() - start)


def environment():
    """One line naming the machine and the libraries that decode."""
    import av

    codec = ".".join(str(part) for part in av.library_versions["libavcodec"])
    return (
        f"environment: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}, PyAV {av.__version__} "
        f"(libavcodec {codec})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="ca2st bench data", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--num-videos", type=int, default=6)
    parser.add_argument("--width", type=int, default=340)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--keyframe-interval", type=int, default=250)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--frame-stride", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--audio-frames", type=int, default=1024)
    parser.add_argument("--rand-augment", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=str, default="1,2")
    parser.add_argument("--gpu-step-seconds", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    print(environment())

    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        paths = make_videos(directory, args)
        print(
            f"wrote {len(paths)} clips of {args.seconds:g}s {args.width}x{args.height} "
            f"@ {args.fps:g} fps, {args.sample_rate} Hz stereo "
            f"(GOP {args.keyframe_interval}) in {time.perf_counter() - started:.1f}s"
        )
        rng = np.random.default_rng(0)
        rand_augment = RandAugment() if args.rand_augment else None

        def decode_video(path):
            with VideoReader(path) as reader:
                indices = sample_frame_indices(
                    reader.num_frames, "dense", args.num_frames, args.frame_stride, rng
                )
                return reader.read(indices)

        def decode_and_transform(path):
            return train_clip_transform(
                decode_video(path), rng, args.crop_size, rand_augment=rand_augment
            )

        num_samples = num_samples_for_frames(args.audio_frames)

        def audio_features(path):
            with AudioReader(path) as reader:
                start = rng.uniform(0, max(reader.duration - num_samples / 16000, 0))
                waveform = reader.read(start, num_samples)
            return normalize_fbank(
                pad_or_crop_frames(kaldi_fbank(waveform), args.audio_frames)
            )

        records = [VideoRecord(path, 0) for path in paths]
        dataset = VideoDataset(
            records,
            batch_size=1,  # only `load_view` is timed here
            num_frames=args.num_frames,
            frame_stride=args.frame_stride,
            crop_size=args.crop_size,
            audio_frames=args.audio_frames,
            rand_augment=rand_augment,
        )

        results = {
            "video decode": rate(decode_video, paths, args.repeats),
            "video decode + transforms": rate(
                decode_and_transform, paths, args.repeats
            ),
            "audio decode + fbank": rate(audio_features, paths, args.repeats),
            "full sample (video + audio)": rate(
                dataset.load_view, list(range(len(records))), args.repeats
            ),
        }
        baseline = results["video decode"]
        print("\nper worker (one process), clips/s; cost relative to video decode")
        for name, value in results.items():
            print(
                f"  {name:30s} {value:8.2f}   ({1000 / value:7.1f} ms/clip, "
                f"{baseline / value:5.2f}x)"
            )

        print("\nworker pool, full samples/s; speed-up over one worker in-process")
        for workers in (int(w) for w in args.workers.split(",")):
            value = pool_rate(dataset, workers, args.repeats)
            print(
                f"  {workers:2d} worker(s) {value:8.2f}   ({value / workers:.2f} per "
                f"worker, {value / per_worker_full(results):.2f}x)"
            )

        needed_rate = args.batch_size / args.gpu_step_seconds
        per_worker = per_worker_full(results)
        workers_needed = math.ceil(needed_rate / per_worker)
        print(
            f"\nA GPU step of {args.gpu_step_seconds:g}s on batches of {args.batch_size} "
            f"consumes {needed_rate:.1f} clips/s: about {workers_needed} worker(s) at "
            f"{per_worker:.2f} clips/s each (assuming one core per worker and linear "
            "scaling; check the pool numbers above)."
        )
    return 0


def per_worker_full(results):
    return results["full sample (video + audio)"]


if __name__ == "__main__":
    sys.exit(main())
