"""Annotation and class-name readers, including the errors for bad lines."""

import json

import pytest

from keras_ca2st.data import (
    AnnotationError,
    VideoRecord,
    dataset_recipe,
    read_annotations,
    read_class_names,
    read_csv_annotations,
    read_epic_kitchens,
    read_space_separated,
)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_kinetics_and_ssv2_lists(tmp_path):
    path = _write(
        tmp_path, "k400.txt", "abseiling/a b.mp4 0\n\nzumba/c.mp4 399\n38483.mp4 146\n"
    )
    records = read_space_separated(path, video_root="/data")
    assert records == [
        VideoRecord("/data/abseiling/a b.mp4", 0, source=f"{path}:1"),
        VideoRecord("/data/zumba/c.mp4", 399, source=f"{path}:3"),
        VideoRecord("/data/38483.mp4", 146, source=f"{path}:4"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("a.mp4 1\nb.mp4 cat\n", r"k400\.txt:2: label 'cat' is not an integer"),
        ("a.mp4 1\nlonely\n", r"k400\.txt:2: expected 'video_path label'"),
    ],
)
def test_space_separated_errors_name_file_and_line(tmp_path, text, message):
    path = _write(tmp_path, "k400.txt", text)
    with pytest.raises(AnnotationError, match=message):
        read_space_separated(path)


def test_epic_kitchens_with_and_without_header(tmp_path):
    plain = _write(tmp_path, "val.csv", "P20_05_0,0,14\nP20_05_1,3,7\n")
    records = read_epic_kitchens(plain, video_root="clips")
    assert records[0].path == "clips/P20_05_0.mp4"
    assert records[1].label == {"verb": 3, "noun": 7}
    header = _write(
        tmp_path, "train.csv", "narration_id,verb_class,noun_class\nP01_01_0,2,10\n"
    )
    assert [r.label for r in read_epic_kitchens(header)] == [{"verb": 2, "noun": 10}]
    broken = _write(tmp_path, "bad.csv", "P01_01_0,2,10\nP01_01_1,2\nP01_01_2,x,1\n")
    with pytest.raises(AnnotationError, match=r"bad\.csv:2: expected 'narration_id"):
        read_epic_kitchens(broken)
    broken = _write(tmp_path, "bad2.csv", "P01_01_0,2,10\nP01_01_2,x,1\n")
    with pytest.raises(AnnotationError, match=r"bad2\.csv:2: verb class 'x'"):
        read_epic_kitchens(broken)


def test_csv_with_header_and_segments(tmp_path):
    path = _write(
        tmp_path,
        "vggsound.csv",
        'path,label,start,end\nvideos/a.mp4,3,1.5,4.0\n"videos/b, c.mp4",0,,\n',
    )
    records = read_csv_annotations(path, video_root="/root")
    assert records[0] == VideoRecord("/root/videos/a.mp4", 3, 1.5, 4.0, f"{path}:2")
    assert records[1].path == "/root/videos/b, c.mp4"
    assert records[1].start is None and records[1].end is None
    assert read_annotations(path, "csv")[0].label == 3


def test_csv_labels_may_be_class_names(tmp_path):
    path = _write(tmp_path, "ucf.csv", "path,label\nx.mp4,Archery\ny.mp4,1\n")
    records = read_csv_annotations(path, class_names=["ApplyLipstick", "Archery"])
    assert [r.label for r in records] == [1, 1]


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,label\na.mp4,1\n", r"x\.csv:1: header .* no 'path' column"),
        ("path,label\na.mp4,1\nb.mp4\n", r"x\.csv:3: 1 fields but the header has 2"),
        ("path,label,start,end\na.mp4,1,2.0,1.0\n", r"x\.csv:2: end 1\.0 is not after"),
        ("path,label,start\na.mp4,1,soon\n", r"x\.csv:2: start 'soon' is not a number"),
        ("path,label\na.mp4,dog\n", r"x\.csv:2: label 'dog' is not an integer"),
        ("", r"x\.csv:1: empty file"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, text, message):
    path = _write(tmp_path, "x.csv", text)
    with pytest.raises(AnnotationError, match=message):
        read_csv_annotations(path)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        read_space_separated(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="format"):
        read_annotations(tmp_path / "nope.txt", "yaml")


def test_class_name_files(tmp_path):
    plain = _write(tmp_path, "labels.txt", "abseiling\nair drumming\n")
    assert read_class_names(plain) == ["abseiling", "air drumming"]
    indexed = _write(tmp_path, "classInd.txt", "2 ApplyLipstick\n1 ApplyEyeMakeup\n")
    assert read_class_names(indexed) == ["ApplyEyeMakeup", "ApplyLipstick"]
    ssv2 = tmp_path / "labels.json"
    ssv2.write_text(json.dumps({"Pushing something": "1", "Approaching": "0"}))
    assert read_class_names(ssv2) == ["Approaching", "Pushing something"]
    epic = _write(
        tmp_path,
        "EPIC_100_verb_classes.csv",
        "id,key,instances,category\n1,put,\"['put']\",leave\n0,take,[],get\n",
    )
    assert read_class_names(epic) == ["take", "put"]


def test_class_name_file_errors(tmp_path):
    gap = _write(tmp_path, "gap.txt", "0 a\n2 b\n")
    with pytest.raises(AnnotationError, match="consecutively"):
        read_class_names(gap)
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": 0,\n "b": }')
    with pytest.raises(AnnotationError, match=r"broken\.json:2: invalid JSON"):
        read_class_names(broken)
    no_id = _write(tmp_path, "names.csv", "key\nput\n")
    with pytest.raises(AnnotationError, match="'id' column"):
        read_class_names(no_id)


def test_dataset_recipes_follow_the_reference():
    ssv2 = dataset_recipe("ssv2")
    assert ssv2["dataset"]["sampling"] == "uniform"
    assert ssv2["dataset"]["horizontal_flip"] is False
    assert dataset_recipe("k400")["dataset"]["num_test_clips"] == 5
    assert dataset_recipe("EK100")["num_classes"] == {"verb": 97, "noun": 300}
    assert dataset_recipe("vggsound")["dataset"]["audio_frames"] == 1024
    assert dataset_recipe("synthetic")["dataset"]["horizontal_flip"] is False
    recipe = dataset_recipe("k400")
    recipe["dataset"]["crop_size"] = 1
    assert dataset_recipe("k400")["dataset"]["crop_size"] == 224, "fresh copies"
    with pytest.raises(ValueError, match="Unknown dataset"):
        dataset_recipe("imagenet")
