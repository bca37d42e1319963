"""A corpus of broken and unusual inputs, written by the tests themselves.

Every case is a file (or a missing path, or a folder) fed to one public entry
point, with what must come of it:

- `"ok"`: read correctly (finite values, the right shapes, and any property
  in `check`);
- `"error"`: one of the package's own errors, whose message names the file;
- `"either"`: one of the two, decided by how much of a damaged file is left
  (a truncated video keeps the frames before the cut).

Media are encoded with PyAV in many containers, codecs and layouts, then
damaged byte by byte; checkpoints are written with torch and by hand;
annotation and class-name files are written as text.
"""

import dataclasses
import fractions
import io
import json
import os
import struct
import zipfile

import numpy as np

RATE = 16000
MILLISECONDS = fractions.Fraction(1, 1000)


@dataclasses.dataclass
class Case:
    name: str
    entry: str  # video | audio | sample | annotations | class_names | checkpoint
    path: str
    expect: str  # ok | error | either
    check: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)


# === Media ===


def tone(num_samples, rate, channels, frequency=440.0, amplitude=0.3):
    t = np.arange(num_samples) / rate
    mono = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def encode(
    path,
    container_format=None,
    video=None,
    audio=None,
):
    """Writes a media file with PyAV.

    Args:
        video: dict(codec, width, height, pix_fmt, frames, rate, rotation,
            options, times) or None.
        audio: dict(codec, rate, layout, samples (num_samples, channels) float32,
            format) or None. Samples go in as packed float frames (PyAV cannot
            build planar frames of 8 or more channels) and the encoder
            converts them.
    """
    import av

    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only
    container = av.open(os.fspath(path), "w", format=container_format)
    video_stream = audio_stream = None
    if video is not None:
        video_stream = container.add_stream(video["codec"], rate=video.get("rate", 25))
        video_stream.width = video.get("width", 64)
        video_stream.height = video.get("height", 48)
        video_stream.pix_fmt = video.get("pix_fmt", "yuv420p")
        if video.get("options"):
            video_stream.options = video["options"]
        if video.get("rotation"):
            video_stream.set_display_rotation(video["rotation"])
        if video.get("times") is not None:
            video_stream.codec_context.time_base = MILLISECONDS
            video_stream.time_base = MILLISECONDS
    if audio is not None:
        audio_stream = container.add_stream(audio["codec"], rate=audio["rate"])
        audio_stream.layout = audio.get("layout", "mono")
        if audio.get("format"):
            audio_stream.format = audio["format"]
    if video_stream is not None:
        height, width = video_stream.height, video_stream.width
        num_frames = video.get("frames", 20)
        times = video.get("times")
        for index in range(num_frames):
            pixels = np.zeros((height, width, 3), np.uint8)
            pixels[:, : width // 2] = (40 + 9 * index) % 256
            pixels[: height // 2, width // 2 :] = 200
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if times is not None:
                frame.pts = int(round(times[index] * 1000))
                frame.time_base = MILLISECONDS
            for packet in video_stream.encode(frame):
                container.mux(packet)
        for packet in video_stream.encode():
            container.mux(packet)
    if audio_stream is not None:
        samples = audio["samples"]
        channels = samples.shape[1]
        chunk = 1024
        for start in range(0, samples.shape[0], chunk):
            block = samples[start : start + chunk]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block).reshape(1, -1),
                format="flt",
                layout=audio.get("layout", "mono"),
            )
            assert frame.layout.nb_channels == channels
            frame.sample_rate = audio["rate"]
            frame.pts = start
            for packet in audio_stream.encode(frame):
                container.mux(packet)
        for packet in audio_stream.encode():
            container.mux(packet)
    container.close()
    return os.fspath(path)


def h264(**overrides):
    return {"codec": "libx264", "options": {"g": "8"}, **overrides}


def aac(rate=RATE, layout="mono", seconds=1.0, channels=1, samples=None):
    if samples is None:
        samples = tone(int(rate * seconds), rate, channels)
    return {"codec": "aac", "rate": rate, "layout": layout, "samples": samples}


def damaged(source, target, how):
    """A copy of `source` damaged at the byte level."""
    data = bytearray(open(source, "rb").read())
    rng = np.random.default_rng(len(data))
    if how.startswith("truncate"):
        fraction = float(how.split(":")[1])
        data = data[: int(len(data) * fraction)]
    elif how == "zero_header":
        data[:1024] = bytes(min(1024, len(data)))
    elif how == "noise_middle":
        middle = len(data) // 2
        data[middle : middle + 2048] = rng.integers(0, 256, 2048, np.uint8).tobytes()
    elif how == "noise_every_kb":
        for offset in range(512, len(data), 1024):
            data[offset] ^= 0xFF
    with open(target, "wb") as file:
        file.write(bytes(data))
    return os.fspath(target)


def media_cases(folder):
    """Video and audio files in odd layouts and damaged ones."""
    folder = os.fspath(folder)
    cases = []

    def at(name):
        return os.path.join(folder, name)

    def video_case(name, expect="ok", check=None, **kwargs):
        path = encode(at(name), **kwargs)
        cases.append(Case(f"video:{name}", "video", path, expect, check or {}))
        return path

    good = video_case("good.mp4", video=h264(), audio=aac())
    cases.append(Case("sample:good.mp4", "sample", good, "ok"))
    video_case("mpegts.ts", container_format="mpegts", video=h264(frames=40))
    video_case(
        "matroska.mkv", video=h264(), audio=aac(rate=44100, channels=2, layout="stereo")
    )
    video_case(
        "vp9.webm",
        video={"codec": "libvpx-vp9"},
        audio={
            "codec": "libopus",
            "rate": 48000,
            "layout": "stereo",
            "samples": tone(48000, 48000, 2),
        },
    )
    video_case("vp8.webm", video={"codec": "libvpx"})
    video_case("mpeg4.avi", video={"codec": "mpeg4"})
    video_case("mjpeg.avi", video={"codec": "mjpeg", "pix_fmt": "yuvj420p"})
    video_case(
        "hevc.mp4",
        video={"codec": "libx265", "options": {"x265-params": "log-level=none"}},
    )
    video_case("av1.mp4", video={"codec": "libsvtav1", "width": 64, "height": 64})
    video_case("quicktime.mov", video=h264())
    for degrees, size in ((90, (64, 48)), (180, (48, 64)), (270, (64, 48))):
        video_case(
            f"rotated_{degrees}.mp4",
            check={"rotation": degrees, "height": size[0], "width": size[1]},
            video=h264(rotation=degrees),
        )
    video_case(
        "odd_size.mp4",
        check={"height": 37, "width": 51},
        video=h264(width=51, height=37, pix_fmt="yuv444p"),
    )
    video_case("ten_bit.mp4", video=h264(pix_fmt="yuv420p10le"))
    video_case("gray_ffv1.mkv", video={"codec": "ffv1", "pix_fmt": "gray"})
    video_case("one_frame.mp4", check={"num_frames": 1}, video=h264(frames=1))
    video_case("two_frames.mp4", video=h264(frames=2))
    video_case(
        "variable_rate.mkv",
        video=h264(
            frames=12, rate=1000, times=np.cumsum([0.0] + [0.02, 0.07] * 5 + [0.03])
        ),
    )
    video_case("long_gop.mp4", video=h264(frames=60, options={"g": "250"}))
    video_case(
        "png_image.png",
        check={"num_frames": 1},
        video={"codec": "png", "pix_fmt": "rgb24", "frames": 1},
        container_format="image2",
    )

    # Damaged copies of a longer file: the frames before the damage may be
    # used, nothing past it may come back wrong.
    longer = encode(at("longer.mp4"), video=h264(frames=50), audio=aac(seconds=2.0))
    for how in (
        "truncate:0.1",
        "truncate:0.5",
        "truncate:0.9",
        "zero_header",
        "noise_middle",
        "noise_every_kb",
    ):
        path = damaged(longer, at(f"damaged_{how.replace(':', '_')}.mp4"), how)
        cases.append(Case(f"video:damaged {how}", "video", path, "either"))
        cases.append(Case(f"audio:damaged {how}", "audio", path, "either"))
        cases.append(Case(f"sample:damaged {how}", "sample", path, "either"))
    empty = at("empty.mp4")
    open(empty, "wb").close()
    junk = at("random.mp4")
    with open(junk, "wb") as file:
        file.write(
            np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes()
        )
    text = at("text.mp4")
    with open(text, "w") as file:
        file.write("this is not a video\n" * 100)
    folder_path = at("folder.mp4")
    os.makedirs(folder_path, exist_ok=True)
    for name, path in (
        ("empty", empty),
        ("random bytes", junk),
        ("text", text),
        ("directory", folder_path),
        ("missing", at("missing.mp4")),
    ):
        for entry in ("video", "audio", "sample"):
            cases.append(Case(f"{entry}:{name}", entry, path, "error"))
    audio_only = encode(at("audio_only.m4a"), audio=aac())
    cases.append(Case("video:audio-only file", "video", audio_only, "error"))
    silent = encode(at("no_audio.mp4"), video=h264())
    cases.append(Case("audio:no audio stream", "audio", silent, "error"))
    cases.append(Case("sample:no audio stream", "sample", silent, "error"))
    cases.append(
        Case(
            "sample:no audio stream, silence",
            "sample",
            silent,
            "ok",
            options={"missing_audio": "silence"},
        )
    )

    # Audio tracks: channel layouts, rates, codecs and sample formats.
    layouts = {
        "mono": 1,
        "stereo": 2,
        "2.1": 3,
        "quad": 4,
        "5.0": 5,
        "5.1": 6,
        "6.1": 7,
        "7.1": 8,
        "octagonal": 8,
        "hexadecagonal": 16,
    }
    for layout, channels in layouts.items():
        for rate in (48000,) if channels > 2 else (16000, 44100):
            samples = tone(rate, rate, channels)
            codec = "aac" if channels <= 8 else "pcm_s16le"
            suffix = "mp4" if codec == "aac" else "wav"
            name = f"audio_{layout}_{rate}.{suffix}"
            path = encode(
                at(name),
                audio={
                    "codec": codec,
                    "rate": rate,
                    "layout": layout,
                    "samples": samples,
                },
            )
            cases.append(
                Case(
                    f"audio:{layout} {rate} Hz {codec}",
                    "audio",
                    path,
                    "ok",
                    check={"channels": channels},
                )
            )
    for codec, suffix, rate, layout in (
        ("flac", "flac", 48000, "7.1"),
        ("pcm_s16le", "wav", 48000, "7.1"),
        ("pcm_f32le", "wav", 96000, "stereo"),
        ("pcm_s32le", "wav", 22050, "mono"),
        ("pcm_u8", "wav", 8000, "mono"),
        ("libmp3lame", "mp3", 44100, "stereo"),
        ("libopus", "opus", 48000, "5.1"),
        ("ac3", "ac3", 48000, "5.1"),
        ("mp2", "mp2", 44100, "stereo"),
        ("alac", "m4a", 44100, "stereo"),
    ):
        channels = layouts.get(layout, 6)
        path = encode(
            at(f"codec_{codec}.{suffix}"),
            audio={
                "codec": codec,
                "rate": rate,
                "layout": layout,
                "samples": tone(rate, rate, channels),
            },
        )
        cases.append(Case(f"audio:{codec} {layout}", "audio", path, "ok"))
    video_71 = encode(
        at("video_with_7.1.mp4"),
        video=h264(),
        audio=aac(rate=48000, layout="7.1", channels=8),
    )
    cases.append(Case("sample:video with 7.1 audio", "sample", video_71, "ok"))
    for name, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
        samples = tone(RATE, RATE, 1)
        samples[RATE // 2 : RATE // 2 + 100] = value
        path = encode(
            at(f"float_{name}.wav"),
            audio={
                "codec": "pcm_f32le",
                "rate": RATE,
                "layout": "mono",
                "samples": samples,
            },
        )
        cases.append(Case(f"audio:{name} samples", "audio", path, "error"))
        with_video = encode(
            at(f"video_float_{name}.mkv"),
            video=h264(),
            audio={
                "codec": "pcm_f32le",
                "rate": RATE,
                "layout": "mono",
                "samples": samples,
            },
        )
        cases.append(
            Case(f"sample:{name} audio samples", "sample", with_video, "error")
        )
    loud = encode(
        at("float_huge.wav"),
        audio={
            "codec": "pcm_f32le",
            "rate": RATE,
            "layout": "mono",
            "samples": tone(RATE, RATE, 1, amplitude=3e38),
        },
    )
    cases.append(Case("audio:huge float samples", "audio", loud, "either"))
    short = encode(
        at("audio_50ms.wav"),
        audio={
            "codec": "pcm_s16le",
            "rate": RATE,
            "layout": "mono",
            "samples": tone(800, RATE, 1),
        },
    )
    cases.append(Case("audio:50 ms track", "audio", short, "ok"))
    return cases


# === Annotations and class names ===


def text_cases(folder):
    folder = os.fspath(folder)
    cases = []

    def write(
        name,
        content,
        entry="annotations",
        expect="error",
        fmt="csv",
        encoding="utf-8",
        check=None,
    ):
        path = os.path.join(folder, name)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode, **({} if mode == "wb" else {"encoding": encoding})) as f:
            f.write(content)
        cases.append(
            Case(
                f"{entry}:{name}",
                entry,
                path,
                expect,
                check or {},
                options={"format": fmt},
            )
        )

    write("bom.csv", "\ufeffpath,label\na.mp4,1\n", expect="ok", check={"records": 1})
    write(
        "crlf.csv",
        "path,label\r\na.mp4,1\r\nb.mp4,2\r\n",
        expect="ok",
        check={"records": 2},
    )
    write(
        "segments.csv",
        "path,label,start,end\na.mp4,1,0.5,2.0\n",
        expect="ok",
        check={"records": 1},
    )
    write("nan_start.csv", "path,label,start,end\na.mp4,1,nan,2.0\n")
    write("inf_end.csv", "path,label,start,end\na.mp4,1,0,inf\n")
    write("negative_start.csv", "path,label,start\na.mp4,1,-1\n")
    write("end_before_start.csv", "path,label,start,end\na.mp4,1,3,2\n")
    write("negative_label.csv", "path,label\na.mp4,-1\n")
    write("float_label.csv", "path,label\na.mp4,1.5\n")
    write("empty.csv", "")
    write("header_only.csv", "path,label\n", expect="ok", check={"records": 0})
    write("no_label_column.csv", "path,class\na.mp4,1\n")
    write("short_row.csv", "path,label\na.mp4\n")
    write("long_row.csv", "path,label\na.mp4,1,extra\n")
    write("empty_path.csv", "path,label\n,1\n")
    write("latin1.csv", "path,label\ncaf\u00e9.mp4,1\n", encoding="latin-1")
    write("utf16.csv", "path,label\na.mp4,1\n", encoding="utf-16")
    write(
        "binary.csv",
        np.random.default_rng(1).integers(0, 256, 3000, np.uint8).tobytes(),
    )
    write("nul_bytes.csv", b"path,label\na.mp4,1\x00\n")
    write("unclosed_quote.csv", 'path,label\n"a.mp4,1\n')
    write(
        "space_ok.txt",
        "a b.mp4 3\n\nc.mp4 4\n",
        fmt="space",
        expect="ok",
        check={"records": 2},
    )
    write(
        "space_bom.txt",
        "\ufeffa.mp4 3\n",
        fmt="space",
        expect="ok",
        check={"records": 1},
    )
    write("space_no_label.txt", "a.mp4\n", fmt="space")
    write("space_text_label.txt", "a.mp4 walking\n", fmt="space")
    write(
        "epic_ok.csv",
        "narration_id,verb_class,noun_class\nP01_01_0,2,5\n",
        fmt="epic",
        expect="ok",
        check={"records": 1},
    )
    write(
        "epic_bom.csv",
        "\ufeffnarration_id,verb_class,noun_class\nP01_01_0,2,5\n",
        fmt="epic",
        expect="ok",
        check={"records": 1},
    )
    write("epic_text.csv", "P01_01_0,take,5\n", fmt="epic")
    write("epic_short.csv", "P01_01_0,2\n", fmt="epic")
    directory = os.path.join(folder, "a_folder.csv")
    os.makedirs(directory, exist_ok=True)
    for fmt in ("csv", "space", "epic"):
        cases.append(
            Case(
                f"annotations:directory ({fmt})",
                "annotations",
                directory,
                "error",
                options={"format": fmt},
            )
        )
        cases.append(
            Case(
                f"annotations:missing ({fmt})",
                "annotations",
                os.path.join(folder, "missing.csv"),
                "error",
                options={"format": fmt},
            )
        )

    names = "class_names"
    write("names.txt", "walk\nrun\n", names, "ok", check={"names": 2})
    write("names_bom.txt", "\ufeffwalk\nrun\n", names, "ok", check={"names": 2})
    write("names_indexed.txt", "1 walk\n2 run\n", names, "ok", check={"names": 2})
    write("names_gap.txt", "1 walk\n3 run\n", names)
    write("names.json", json.dumps(["walk", "run"]), names, "ok", check={"names": 2})
    write(
        "names_bom.json",
        "\ufeff" + json.dumps(["walk"]),
        names,
        "ok",
        check={"names": 1},
    )
    write(
        "names_map.json",
        json.dumps({"walk": "0", "run": "1"}),
        names,
        "ok",
        check={"names": 2},
    )
    write("names_bad_map.json", json.dumps({"walk": "x"}), names)
    write("names_number.json", "42", names)
    write("names_broken.json", '["walk",', names)
    write("names_nested.json", json.dumps({"walk": [0]}), names)
    write("names.csv", "id,key\n0,walk\n1,run\n", names, "ok", check={"names": 2})
    write("names_short_row.csv", "id,key\n0\n", names)
    write("names_no_id.csv", "key\nwalk\n", names)
    write("names_binary.txt", b"\xff\xfe\x00walk", names)
    cases.append(Case("class_names:directory", names, directory, "error"))
    return cases


# === Checkpoints ===


def safetensors_bytes(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def checkpoint_cases(folder):
    import torch

    folder = os.fspath(folder)
    cases = []

    def add(name, expect="error", check=None):
        cases.append(
            Case(
                f"checkpoint:{name}",
                "checkpoint",
                os.path.join(folder, name),
                expect,
                check or {},
            )
        )

    def write(name, data, expect="error", check=None):
        with open(os.path.join(folder, name), "wb") as file:
            file.write(data)
        add(name, expect, check)

    state = {
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b": torch.ones(3, dtype=torch.float16),
    }
    good_pth = os.path.join(folder, "good.pth")
    torch.save(state, good_pth)
    add("good.pth", "ok", {"tensors": 2})
    legacy = os.path.join(folder, "legacy.pth")
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    add("legacy.pth", "ok", {"tensors": 2})
    torch.save(
        {
            "model": state,
            "args": __import__("argparse").Namespace(lr=0.1),
            "epoch": np.int64(3),
        },
        os.path.join(folder, "wrapped.pth"),
    )
    add("wrapped.pth", "ok", {"tensors": 2})
    good_bytes = open(good_pth, "rb").read()
    legacy_bytes = open(legacy, "rb").read()
    write("empty.pth", b"")
    write("truncated_zip.pth", good_bytes[: len(good_bytes) // 2])
    write("truncated_zip_end.pth", good_bytes[:-30])
    write("truncated_legacy.pth", legacy_bytes[: len(legacy_bytes) // 2])
    write(
        "random.bin",
        np.random.default_rng(2).integers(0, 256, 4000, np.uint8).tobytes(),
    )
    write("text.pt", b"not a checkpoint\n" * 10)
    # Pickles asking for globals: a module attribute that is not a class,
    # and code that would run.
    for name, (module, attribute) in {
        "numpy_builtins.pth": ("numpy.dtypes", "__builtins__"),
        "os_system.pth": ("os", "system"),
        "numpy_private.pth": ("numpy.dtypes", "_DTypeMeta"),
        "numpy_not_dtype.pth": ("numpy.dtypes", "StringDTypeX"),
    }.items():
        write(name, _torch_file_with_pickle(_pickle_with_global(module, attribute)))
    torch.save([torch.ones(2)], os.path.join(folder, "list.pth"))
    add("list.pth")
    torch.save(
        {"epoch": 3, "note": "no tensors"}, os.path.join(folder, "no_tensors.pth")
    )
    add("no_tensors.pth")
    zip_junk = io.BytesIO()
    with zipfile.ZipFile(zip_junk, "w") as archive:
        archive.writestr("archive/data.pkl", b"garbage")
    write("zip_without_pickle.pth", zip_junk.getvalue())

    values = np.arange(6, dtype="<f4")
    write(
        "good.safetensors",
        safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}},
            values.tobytes(),
        ),
        "ok",
        {"tensors": 1},
    )
    write("empty.safetensors", b"")
    write("header_list.safetensors", safetensors_bytes([1, 2, 3]))
    write("header_string.safetensors", safetensors_bytes("weights"))
    write("entry_not_table.safetensors", safetensors_bytes({"w": [0, 24]}, bytes(24)))
    write(
        "no_dtype.safetensors",
        safetensors_bytes({"w": {"shape": [2, 3], "data_offsets": [0, 24]}}, bytes(24)),
    )
    write(
        "bad_dtype.safetensors",
        safetensors_bytes(
            {"w": {"dtype": "F128", "shape": [2], "data_offsets": [0, 32]}}, bytes(32)
        ),
    )
    write(
        "byte_length_mismatch.safetensors",
        safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, bytes(24)
        ),
    )
    write(
        "outside_file.safetensors",
        safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, bytes(10)
        ),
    )
    write(
        "negative_shape.safetensors",
        safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}},
            bytes(24),
        ),
    )
    write(
        "offsets_reversed.safetensors",
        safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, bytes(24)
        ),
    )
    write("header_too_long.safetensors", struct.pack("<Q", 10**12) + b"{}")
    write("header_not_json.safetensors", struct.pack("<Q", 5) + b"{{{{{")
    write("header_not_utf8.safetensors", struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc")

    index_folder = os.path.join(folder, "sharded")
    os.makedirs(index_folder, exist_ok=True)
    for name, content in (
        ("broken.index.json", "{"),
        ("list.index.json", "[]"),
        ("no_map.index.json", json.dumps({"metadata": {}})),
        (
            "missing_shard.index.json",
            json.dumps({"weight_map": {"w": "gone.safetensors"}}),
        ),
        ("bad_map.index.json", json.dumps({"weight_map": {"w": 3}})),
    ):
        with open(os.path.join(index_folder, name), "w") as file:
            file.write(content)
        cases.append(
            Case(
                f"checkpoint:{name}",
                "checkpoint",
                os.path.join(index_folder, name),
                "error",
            )
        )
    for name, config in (("config_broken", "{"), ("config_list", "[1]")):
        directory = os.path.join(folder, name)
        os.makedirs(directory, exist_ok=True)
        torch.save(state, os.path.join(directory, "pytorch_model.bin"))
        with open(os.path.join(directory, "config.json"), "w") as file:
            file.write(config)
        cases.append(Case(f"checkpoint:{name}", "checkpoint", directory, "error"))
    no_weights = os.path.join(folder, "no_weights")
    os.makedirs(no_weights, exist_ok=True)
    cases.append(
        Case("checkpoint:folder without weights", "checkpoint", no_weights, "error")
    )
    add("missing.safetensors")
    return cases


def _pickle_with_global(module, name):
    """A protocol-2 pickle whose only object is the global `module.name`."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\nq\x00."


def _torch_file_with_pickle(pickled):
    """A zip-format torch checkpoint whose `data.pkl` is `pickled`."""
    import torch

    original = io.BytesIO()
    torch.save({}, original)
    rewritten = io.BytesIO()
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(rewritten, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("/data.pkl"):
                data = pickled
            target.writestr(item, data)
    return rewritten.getvalue()


def all_cases(folder):
    """Every case, in folders under `folder`."""
    cases = []
    for kind, build in (
        ("media", media_cases),
        ("text", text_cases),
        ("checkpoints", checkpoint_cases),
    ):
        path = os.path.join(os.fspath(folder), kind)
        os.makedirs(path, exist_ok=True)
        cases += build(path)
    return cases
