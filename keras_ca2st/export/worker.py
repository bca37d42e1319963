"""`python -m keras_ca2st.export.worker MODEL.keras FORMAT OUT [...]` under TensorFlow.

The subprocess of `export_models` when the caller's backend is not
TensorFlow: loads each `.keras` file (safe mode) once and writes each `OUT`
of the `MODEL FORMAT OUT` triples. A failure is one line on stderr, naming
the file it could not write, and exit status 1.
"""

import sys


def main(argv):
    import keras

    import keras_ca2st.models  # noqa: F401 (registers the classes .keras files name)
    from keras_ca2st.export import tensorflow_writer

    if keras.config.backend() != "tensorflow" or not argv or len(argv) % 3:
        print(
            "usage: KERAS_BACKEND=tensorflow python -m keras_ca2st.export.worker "
            "MODEL.keras FORMAT OUT [MODEL.keras FORMAT OUT ...]",
            file=sys.stderr,
        )
        return 1
    models = {}
    for model_path, format, output in zip(
        argv[::3], argv[1::3], argv[2::3], strict=True
    ):
        try:
            if model_path not in models:
                models[model_path] = keras.saving.load_model(
                    model_path, compile=False, safe_mode=True
                )
            tensorflow_writer.write(models[model_path], output, format)
        except Exception as error:  # reported to the parent as one line
            reason = str(error).strip().splitlines()
            print(
                f"{output}: {type(error).__name__}: {reason[0] if reason else ''}",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
