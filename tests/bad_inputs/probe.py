"""Runs corpus cases through the public entry points, one JSON line per case.

`python -m tests.bad_inputs.probe CASES.json RESULTS.jsonl`: each case is
written to RESULTS as soon as it ends, so when a native crash kills this
process the caller knows which case did it and restarts after it
(`run_cases`).
"""

import json
import os
import subprocess
import sys

import numpy as np

AUDIO_SAMPLES = 16000


def run_entry(case):
    """Calls the case's entry point; returns a dict describing what came back."""
    entry, path, options = case["entry"], case["path"], case.get("options", {})
    if entry == "video":
        from keras_ca2st.data import VideoReader

        with VideoReader(path) as reader:
            indices = sorted({0, reader.num_frames // 2, reader.num_frames - 1})
            frames = reader.read(indices)
            return {
                "arrays": [frames],
                "shape_ok": frames.shape
                == (len(indices), reader.height, reader.width, 3)
                and frames.dtype == np.uint8,
                "num_frames": reader.num_frames,
                "height": reader.height,
                "width": reader.width,
                "rotation": getattr(reader, "rotation", 0),
            }
    if entry == "audio":
        from keras_ca2st.data import AudioReader

        with AudioReader(path) as reader:
            window = reader.read(reader.start_time, AUDIO_SAMPLES)
            return {
                "arrays": [window],
                "shape_ok": window.shape == (AUDIO_SAMPLES,)
                and window.dtype == np.float32,
                "channels": reader.num_channels,
            }
    if entry == "sample":
        from keras_ca2st.data import ClipDecoder, ClipSpec, ClipTransform
        from keras_ca2st.data.clip_spec import INPUT_NAMES

        spec = ClipSpec(INPUT_NAMES, num_frames=4, crop_size=32, audio_frames=100)
        decoder = ClipDecoder.for_spec(
            spec, frame_stride=2, missing_audio=options.get("missing_audio", "error")
        )
        inputs = ClipTransform(spec)(
            decoder.decode(path, 0, np.random.default_rng(0)), np.random.default_rng(0)
        )
        shapes = spec.input_shapes()
        return {
            "arrays": list(inputs.values()),
            "shape_ok": {k: tuple(v.shape) for k, v in inputs.items()}
            == {k: tuple(s) for k, s in shapes.items()},
        }
    if entry == "annotations":
        from keras_ca2st.data import read_annotations

        records = read_annotations(path, options["format"])
        return {"arrays": [], "shape_ok": True, "records": len(records)}
    if entry == "class_names":
        from keras_ca2st.data import read_class_names

        names = read_class_names(path)
        return {
            "arrays": [],
            "shape_ok": all(isinstance(n, str) and n for n in names),
            "names": len(names),
        }
    if entry == "checkpoint":
        from keras_ca2st.conversion import read_checkpoint

        checkpoint = read_checkpoint(path)
        arrays = [checkpoint.array(key) for key in checkpoint.keys()]
        return {
            "arrays": arrays,
            "shape_ok": all(
                a.shape == checkpoint.shape(k)
                for a, k in zip(arrays, checkpoint.keys(), strict=True)
            ),
            "tensors": len(arrays),
        }
    raise ValueError(f"unknown entry {entry!r}")


def package_errors():
    from keras_ca2st.conversion import ConversionError
    from keras_ca2st.data import AnnotationError, AudioDecodeError, VideoDecodeError

    return (ConversionError, AnnotationError, AudioDecodeError, VideoDecodeError)


def probe(case):
    try:
        details = run_entry(case)
    except package_errors() as error:
        return {
            "outcome": "error",
            "type": type(error).__name__,
            "message": str(error),
        }
    except Exception as error:  # reported as what it is: not one of ours
        return {
            "outcome": "foreign",
            "type": type(error).__name__,
            "message": str(error),
        }
    arrays = details.pop("arrays")
    details["finite"] = all(
        np.isfinite(np.asarray(a, np.float64)).all() for a in arrays
    )
    return {"outcome": "ok", **details}


def main(cases_path, results_path):
    with open(cases_path) as file:
        cases = json.load(file)
    with open(results_path, "a") as results:
        for case in cases:
            result = {"name": case["name"], **probe(case)}
            results.write(json.dumps(result) + "\n")
            results.flush()


def run_cases(cases, folder, env=None, timeout=600):
    """Runs `cases` (dicts) in subprocesses; returns name → result.

    A case that kills its process (a signal, e.g. SIGSEGV in a decoder) gets
    `{"outcome": "crash", "returncode": ...}`, and the cases after it run in
    a fresh process.
    """
    results = {}
    remaining = list(cases)
    results_path = os.path.join(folder, "results.jsonl")
    attempt = 0
    while remaining:
        attempt += 1
        cases_path = os.path.join(folder, f"cases_{attempt}.json")
        with open(cases_path, "w") as file:
            json.dump(remaining, file)
        open(results_path, "w").close()
        process = subprocess.run(
            [sys.executable, "-m", "tests.bad_inputs.probe", cases_path, results_path],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        with open(results_path) as file:
            done = [json.loads(line) for line in file if line.strip()]
        for result in done:
            results[result["name"]] = result
        remaining = remaining[len(done) :]
        if remaining and process.returncode == 0:
            raise RuntimeError(f"the probe stopped early:\n{process.stderr[-3000:]}")
        if remaining:
            crashed = remaining.pop(0)
            results[crashed["name"]] = {
                "name": crashed["name"],
                "outcome": "crash",
                "returncode": process.returncode,
                "stderr": process.stderr[-2000:],
            }
    return results


if __name__ == "__main__":
    main(*sys.argv[1:3])
