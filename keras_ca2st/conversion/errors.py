"""Errors raised while reading, converting and caching pretrained weights."""


class ConversionError(ValueError):
    """A checkpoint cannot be read or does not fit the model it is loaded into.

    The message names the file, the key and, for shape mismatches, both shapes.
    """
