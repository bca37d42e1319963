"""What the PyAV readers share: opening a file, closing it, clear errors.

`VideoReader` and `AudioReader` both open one container per file, turn
FFmpeg failures into the package's decode errors, and release the file when
closed or when a `with` block ends; `MediaReader` holds that once.
"""

import os


def import_av():
    """The `av` module (PyAV), with an install hint when it is missing."""
    try:
        import av
    except ImportError as error:  # pragma: no cover - depends on environment
        raise ImportError(
            "Decoding video needs PyAV. Install it with `pip install av`."
        ) from error
    return av


def _check_readable_file(path, error_class):
    """Raises `error_class` with a clear message for missing or empty files."""
    if not os.path.exists(path):
        raise error_class(
            f"{path}: no such file. Check the data root and the path in the "
            "annotation file."
        )
    if os.path.isdir(path):
        raise error_class(f"{path}: is a directory, expected a media file.")
    if os.path.getsize(path) == 0:
        raise error_class(
            f"{path}: file is empty (0 bytes). Re-download or re-encode it, or "
            "remove it from the annotation file."
        )


def open_container(path, error_class):
    """Opens a media file with PyAV, turning FFmpeg failures into `error_class`.

    Args:
        path: path of the media file.
        error_class: `VideoDecodeError` or `AudioDecodeError`.

    Returns:
        An open `av.container.InputContainer`.
    """
    av = import_av()
    path = os.fspath(path)
    _check_readable_file(path, error_class)
    try:
        return av.open(path, mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise error_class(
            f"{path}: cannot be opened as a media file ({error}). The file is "
            "probably truncated or corrupt; re-download or re-encode it (for "
            "example `ffmpeg -i in.mp4 -c:v libx264 -c:a aac out.mp4`)."
        ) from error


class MediaReader:
    """Base of the readers: one open PyAV container, closed exactly once.

    Subclasses set `error_class`, read their stream's header in `_open` (the
    container is closed again if that fails, so a bad file leaks no handle)
    and describe themselves in `_summary` for `repr`.

    Args:
        path: path of a media file.

    Example:
    ```python
    with VideoReader("clip.mp4") as reader:  # a MediaReader
        frames = reader.read([0, 4])
    reader.close()  # already closed: a no-op
    ```
    """

    error_class = None  # VideoDecodeError or AudioDecodeError

    def __init__(self, path):
        self.path = os.fspath(path)
        self._av = import_av()
        self._container = open_container(self.path, self.error_class)
        try:
            self._open()
        except Exception:
            self.close()
            raise

    def _open(self):
        """Reads the stream's header; raises `error_class` for bad files."""

    def _summary(self):
        return ""

    def close(self):
        """Releases the file handle. Safe to call twice."""
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.path!r}, {self._summary()})"
