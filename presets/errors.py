"""Errors of the preset layer: weights that are missing or fail verification.

Both are `ConversionError`s (and so `ValueError`s), so one `except` serves
every "these weights cannot be used" case.
"""

from keras_ca2st.conversion.errors import ConversionError


class PresetWeightsUnavailableError(ConversionError):
    """A preset's weights are neither cached nor obtainable (e.g. offline).

    The message lists the missing sources and the `ca2st convert` command that
    builds the preset from local files.
    """


class CorruptPresetError(ConversionError):
    """A converted preset's files do not match the hashes recorded when written."""
