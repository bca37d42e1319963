"""keras_ca2st: CA²ST, CAST and CAVA holistic video recognition for Keras 3.

`import keras_ca2st` imports the models, the preset layer and the training
code, which registers every Keras class a saved `.keras` file of ours may
name (`keras.saving.load_model` then works), and installs the resolver
behind `CAST.from_preset("cast_base")`.

The `ca2st` command is the exception: it imports only what the command it
runs needs, so `ca2st --help` and `ca2st presets` answer without loading a
Keras backend. There the names below are imported on first use.
"""

import os
import sys

from keras_ca2st.lazy import lazy_exports
from keras_ca2st.version import __version__

__all__, _lazy_getattr, __dir__ = lazy_exports(
    __name__,
    {
        "ASTEncoder": "experts",
        "CA2ST": "models",
        "CA2STBackbone": "models",
        "CAST": "models",
        "CAVA": "models",
        "CLIPVisionEncoder": "experts",
        "CrossExpertEncoder": "models",
        "LAVISH": "models",
        "LAVISHBackbone": "models",
        "VideoClassifier": "models",
        "VideoMAEEncoder": "experts",
    },
)


def load_all():
    """Imports the models, presets and training code (see the module doc)."""
    # Each module registers its Keras classes when imported.
    import keras_ca2st.experts
    import keras_ca2st.models
    import keras_ca2st.presets.loader  # installs the preset resolver
    import keras_ca2st.training.losses
    import keras_ca2st.training.metrics
    import keras_ca2st.training.optimizer
    import keras_ca2st.training.schedules  # noqa: F401


def __getattr__(name):
    if name in __all__:  # a model class needs the preset resolver
        load_all()
    return _lazy_getattr(name)


def _started_by_the_ca2st_command():
    return os.path.basename(getattr(sys, "argv", [""])[0] or "") in (
        "ca2st",
        "ca2st.exe",
    )


if not _started_by_the_ca2st_command():
    load_all()
