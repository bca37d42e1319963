"""Package namespaces whose names are imported on first use.

`ca2st --help` and `ca2st presets` must answer without loading a Keras
backend, and the data readers are useful without Keras at all; yet
`keras_ca2st.data.VideoDataset` and `keras_ca2st.training.Recipe` should stay
one attribute away. A package lists where each public name lives and gets a
module `__getattr__` that imports that submodule when the name is first used.
"""

import importlib


def lazy_exports(package, exports):
    """`(__all__, __getattr__, __dir__)` for `package` from `exports`.

    Args:
        package: the package's `__name__`.
        exports: dict public name → submodule (relative to the package) that
            defines it, or `(submodule, name there)` for a renamed export.

    Example:
    ```python
    __all__, __getattr__, __dir__ = lazy_exports(
        __name__, {"VideoDataset": "dataset", "DISTRIBUTION_KINDS": ("distribution", "KINDS")}
    )
    ```
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        source = exports[name]
        submodule, attribute = source if isinstance(source, tuple) else (source, name)
        value = getattr(importlib.import_module(f"{package}.{submodule}"), attribute)
        # Later lookups find it directly, without calling this again.
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
