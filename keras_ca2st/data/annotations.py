"""Annotation and class-name readers for the datasets the paper uses.

Three annotation layouts (SPEC section 10):

- Kinetics-400 / Something-Something-v2: one `path label` per line, space
  separated (`abseiling/xyz.mp4 0`, `38483.mp4 146`).
- EPIC-KITCHENS-100: `narration_id,verb_class,noun_class` per line (the clip
  file is `<narration_id>.mp4`); an optional header line is skipped.
- Audio-visual sets (VGG-Sound, EPIC-SOUNDS, UCF-101, KineticsSound) and the
  synthetic set: a CSV with a header `path,label[,start,end]`; `start`/`end`
  (seconds) select a segment of a longer file.

Every parse error raises `AnnotationError` whose message starts with
`file:line:`.
"""

import contextlib
import csv
import dataclasses
import json
import math
import os
import re

from keras_ca2st.data.errors import AnnotationError

ANNOTATION_FORMATS = ("space", "epic", "csv")


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One labelled clip.

    Attributes:
        path: path of the media file.
        label: class index, or a dict such as `{"verb": 3, "noun": 12}`.
        start: optional segment start in seconds.
        end: optional segment end in seconds.
        source: `"annotation_file:line"`, for error messages.

    Example:

    >>> VideoRecord("a.mp4", 3).label
    3
    """

    path: str
    label: object
    start: float | None = None
    end: float | None = None
    source: str = ""


def _join(root, path):
    return os.path.join(os.fspath(root), path) if root else path


def _parse_int(text, what, where):
    try:
        value = int(text)
    except ValueError:
        raise AnnotationError(
            f"{where}: {what} {text!r} is not an integer class index."
        ) from None
    if value < 0:
        raise AnnotationError(f"{where}: {what} {value} is negative.")
    return value


def _is_integer(text):
    return text.lstrip("-").isdigit()


def _parse_seconds(text, what, where):
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(
            f"{where}: {what} {text!r} is not a number of seconds."
        ) from None
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: {what} {text!r} is not a finite number.")
    if value < 0:
        raise AnnotationError(f"{where}: {what} {value} is negative.")
    return value


@contextlib.contextmanager
def _open_text(path, what="annotation file", newline=None):
    """Opens a UTF-8 text file (a leading BOM, as Excel writes, is dropped).

    Every way a path can fail to be a readable text file is an
    `AnnotationError` naming it.
    """
    path = os.fspath(path)
    try:
        file = open(path, encoding="utf-8-sig", newline=newline)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: {what} not found.") from None
    except IsADirectoryError:
        raise AnnotationError(
            f"{path}: is a directory; give the {what} inside it."
        ) from None
    except OSError as error:
        raise AnnotationError(
            f"{path}: cannot open the {what} ({error.strerror or error})."
        ) from None
    with file:
        try:
            yield file
        except UnicodeDecodeError as error:
            raise AnnotationError(
                f"{path}: not UTF-8 text ({error}); save it as UTF-8."
            ) from None
        except OSError as error:
            raise AnnotationError(
                f"{path}: cannot read the {what} ({error.strerror or error})."
            ) from None


def _lines(path, what="annotation file"):
    with _open_text(path, what) as file:
        yield from enumerate(file, start=1)


def read_space_separated(path, video_root=""):
    """Reads a Kinetics/SSV2-style list of `path label` lines.

    The label is the last whitespace-separated field, so paths may contain
    spaces. Blank lines are skipped.

    Args:
        path: annotation file.
        video_root: directory prepended to every video path.

    Returns:
        list of `VideoRecord`.

    Example:

    >>> records = read_space_separated("k400_train.txt", "/data/k400")  # doctest: +SKIP
    """
    records = []
    for line_number, line in _lines(path):
        text = line.strip()
        if not text:
            continue
        where = f"{path}:{line_number}"
        fields = text.rsplit(maxsplit=1)
        if len(fields) != 2:
            raise AnnotationError(
                f"{where}: expected 'video_path label', got {text!r}."
            )
        label = _parse_int(fields[1], "label", where)
        records.append(VideoRecord(_join(video_root, fields[0]), label, source=where))
    return records


def read_epic_kitchens(path, video_root="", extension=".mp4"):
    """Reads EPIC-KITCHENS-100 `narration_id,verb_class,noun_class` lines.

    A first line whose class fields are not integers is taken as a header.

    Args:
        path: annotation file.
        video_root: directory holding `<narration_id><extension>` clips.
        extension: clip file extension.

    Returns:
        list of `VideoRecord` with `label = {"verb": int, "noun": int}`.

    Example:

    >>> records = read_epic_kitchens("ek100/val.csv", "/data/ek100")  # doctest: +SKIP
    >>> records[0].label  # doctest: +SKIP
    {'verb': 0, 'noun': 14}
    """
    records = []
    for line_number, line in _lines(path):
        text = line.strip()
        if not text:
            continue
        where = f"{path}:{line_number}"
        fields = [field.strip() for field in text.split(",")]
        if len(fields) < 3:
            raise AnnotationError(
                f"{where}: expected 'narration_id,verb_class,noun_class', got {text!r}."
            )
        if line_number == 1 and not (_is_integer(fields[1]) or _is_integer(fields[2])):
            continue  # a header: neither class field is a number
        label = {
            "verb": _parse_int(fields[1], "verb class", where),
            "noun": _parse_int(fields[2], "noun class", where),
        }
        records.append(
            VideoRecord(_join(video_root, fields[0] + extension), label, source=where)
        )
    return records


def read_csv_annotations(path, video_root="", class_names=None):
    """Reads a CSV with a header `path,label[,start,end]`.

    Args:
        path: annotation file.
        video_root: directory prepended to every video path.
        class_names: optional list of class names; when given, labels may be
            names as well as indices.

    Returns:
        list of `VideoRecord`.

    Example:

    >>> records = read_csv_annotations("vggsound/train.csv", "/data")  # doctest: +SKIP
    """
    name_to_index = {name: i for i, name in enumerate(class_names or [])}
    records = []
    rows = _csv_rows(path)
    header_number, header = next(rows, (None, None))
    if header is None:
        raise AnnotationError(f"{path}:1: empty file, expected a 'path,label' header.")
    columns = [column.strip().lower() for column in header]
    for required in ("path", "label"):
        if required not in columns:
            raise AnnotationError(
                f"{path}:{header_number}: header {header} has no '{required}' "
                "column; expected 'path,label[,start,end]'."
            )
    for line_number, row in rows:
        if not any(field.strip() for field in row):
            continue
        where = f"{path}:{line_number}"
        if len(row) != len(columns):
            raise AnnotationError(
                f"{where}: {len(row)} fields but the header has {len(columns)}."
            )
        values = dict(zip(columns, (field.strip() for field in row), strict=True))
        if not values["path"]:
            raise AnnotationError(f"{where}: the path field is empty.")
        label_text = values["label"]
        if label_text in name_to_index:
            label = name_to_index[label_text]
        else:
            label = _parse_int(label_text, "label", where)
        start = end = None
        if values.get("start"):
            start = _parse_seconds(values["start"], "start", where)
        if values.get("end"):
            end = _parse_seconds(values["end"], "end", where)
        if start is not None and end is not None and end <= start:
            raise AnnotationError(f"{where}: end {end} is not after start {start}.")
        records.append(
            VideoRecord(_join(video_root, values["path"]), label, start, end, where)
        )
    return records


def _csv_rows(path, what="annotation file"):
    with _open_text(path, what, newline="") as file:
        reader = csv.reader(file)
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as error:
            raise AnnotationError(
                f"{path}:{reader.line_num}: unreadable CSV ({error})."
            ) from None


def read_annotations(path, format, video_root="", **kwargs):
    """Reads annotations in one of `ANNOTATION_FORMATS`.

    Args:
        path: annotation file.
        format: `"space"` (K400/SSV2), `"epic"` (EK100) or `"csv"`
            (header `path,label[,start,end]`).
        video_root: directory prepended to video paths.
        **kwargs: passed to the format's reader.

    Example:

    >>> records = read_annotations("train.csv", "csv", "/data")  # doctest: +SKIP
    """
    readers = {
        "space": read_space_separated,
        "epic": read_epic_kitchens,
        "csv": read_csv_annotations,
    }
    if format not in readers:
        raise ValueError(f"format must be one of {ANNOTATION_FORMATS}; got {format!r}.")
    return readers[format](path, video_root=video_root, **kwargs)


_INDEXED_NAME = re.compile(r"^(\d+)[\s,]+(.+)$")


def read_class_names(path):
    """Reads class names, ordered by class index.

    Supported layouts:

    - `.json`: a list of names, or a dict `name -> index` (SSV2's
      `labels.json`, whose indices are strings).
    - `.csv` with a header containing `id` and one of `key`, `name`,
      `class`, `label` (EPIC-KITCHENS `EPIC_100_verb_classes.csv`).
    - text: one name per line (Kinetics), or `index name` per line
      (UCF-101's 1-based `classInd.txt`; indices are shifted to start at 0).

    Returns:
        list of class-name strings.

    Example:

    >>> names = read_class_names("classes.txt")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if path.endswith(".json"):
        return _class_names_from_json(path)
    if path.endswith(".csv"):
        return _class_names_from_csv(path)
    lines = [
        (number, line.strip())
        for number, line in _lines(path, "class-name file")
        if line.strip()
    ]
    matches = [_INDEXED_NAME.match(text) for _, text in lines]
    if lines and all(matches):
        indices = [int(match.group(1)) for match in matches]
        offset = min(indices)
        if offset not in (0, 1) or sorted(indices) != list(
            range(offset, offset + len(indices))
        ):
            raise AnnotationError(
                f"{path}:{lines[0][0]}: class indices must run consecutively from "
                "0 or 1."
            )
        names = [""] * len(indices)
        for index, match in zip(indices, matches, strict=True):
            names[index - offset] = match.group(2).strip()
        return names
    return [text for _, text in lines]


def _class_names_from_json(path):
    with _open_text(path, "class-name file") as file:
        try:
            content = json.load(file)
        except json.JSONDecodeError as error:
            raise AnnotationError(
                f"{path}:{error.lineno}: invalid JSON ({error.msg})."
            ) from None
    if isinstance(content, list):
        return [str(name) for name in content]
    if isinstance(content, dict):
        try:
            by_index = {int(index): str(name) for name, index in content.items()}
        except (TypeError, ValueError, OverflowError):
            raise AnnotationError(
                f"{path}: expected a mapping of class name to integer index."
            ) from None
        if sorted(by_index) != list(range(len(by_index))):
            raise AnnotationError(
                f"{path}: class indices are not 0..{len(by_index) - 1}."
            )
        return [by_index[i] for i in range(len(by_index))]
    raise AnnotationError(f"{path}: expected a JSON list or object of class names.")


def _class_names_from_csv(path):
    rows = _csv_rows(path, "class-name file")
    header_number, header = next(rows, (None, None))
    if header is None:
        raise AnnotationError(f"{path}:1: empty class-name file.")
    columns = [column.strip().lower() for column in header]
    name_column = next(
        (c for c in ("key", "name", "class", "label") if c in columns), None
    )
    if "id" not in columns or name_column is None:
        raise AnnotationError(
            f"{path}:{header_number}: header needs an 'id' column and one of "
            "'key', 'name', 'class', 'label'."
        )
    by_index = {}
    for line_number, row in rows:
        if not any(field.strip() for field in row):
            continue
        where = f"{path}:{line_number}"
        if len(row) < len(columns):
            raise AnnotationError(
                f"{where}: {len(row)} fields but the header has {len(columns)}."
            )
        values = dict(zip(columns, row, strict=False))
        by_index[_parse_int(values["id"].strip(), "id", where)] = values[
            name_column
        ].strip()
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(f"{path}: class ids are not 0..{len(by_index) - 1}.")
    return [by_index[i] for i in range(len(by_index))]
