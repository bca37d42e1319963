"""Errors raised by the data pipeline.

Every error subclasses `ValueError` so that callers who do not care about the
distinction can catch one type, while the dataset can tell a broken media file
(skip it and carry on) from a broken annotation file (stop: the run is
misconfigured).
"""


class VideoDecodeError(ValueError):
    """A video file cannot be opened or the requested frames cannot be decoded.

    The message names the file, what went wrong and what to do about it.

    Example:

    >>> try:
    ...     raise VideoDecodeError("clip.mp4: file is empty (0 bytes).")
    ... except ValueError as error:
    ...     print(error)
    clip.mp4: file is empty (0 bytes).
    """


class AudioDecodeError(ValueError):
    """A file has no usable audio track, or its audio cannot be decoded.

    Example:

    >>> issubclass(AudioDecodeError, ValueError)
    True
    """


class AnnotationError(ValueError):
    """An annotation or class-name file has a line that cannot be parsed.

    The message starts with `path:line_number:` so that editors and terminals
    can jump straight to the offending line.

    Example:

    >>> str(AnnotationError("train.csv:3: label 'x' is not an integer."))
    "train.csv:3: label 'x' is not an integer."
    """
