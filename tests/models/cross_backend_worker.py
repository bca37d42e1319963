"""Run by `test_ca2st.py` in a subprocess under another `KERAS_BACKEND`.

Loads a `.keras` model saved by the parent process and writes its predictions on
the parent's inputs, so the parent can compare backends.
"""

import sys

import keras
import numpy as np

import keras_ca2st  # noqa: F401  (registers the serializable classes)


def main(model_path, inputs_path, outputs_path):
    model = keras.saving.load_model(model_path, safe_mode=True)
    inputs = dict(np.load(inputs_path))
    outputs = model.predict(inputs, verbose=0)
    np.save(outputs_path, np.asarray(keras.ops.convert_to_numpy(outputs)))
    print(f"{keras.config.backend()}: predicted {outputs.shape}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
