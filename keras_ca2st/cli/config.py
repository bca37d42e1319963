"""Configuration files for the `ca2st` commands, and their error type.

`--config FILE` reads a TOML (`.toml`) or JSON (`.json`) file whose keys are
the command's long flags, with dashes or underscores (`batch-size` or
`batch_size`):

```toml
# train.toml: `ca2st train --config train.toml --epochs 10`
preset = "ca2st_base"
num-classes = 309
dataset = "vggsound"
train-annotations = "vggsound/train.csv"
data-root = "vggsound/videos"
epochs = 50
batch_size = 48
lr = 5e-4
```

Values are checked like the flags (types, choices). Flags given on the
command line override the file; the file overrides the defaults. An unknown
key is an error that names the file, the key and the valid keys. Relative
paths in the file are relative to the working directory, as on the command
line. Positional arguments (e.g. the videos of `ca2st predict`) stay on the
command line.
"""

import argparse
import difflib
import json
import os
import tomllib


class CLIError(Exception):
    """A user error: the command prints its message as one line and exits 2."""


def config_options(flags):
    """Dict option name (dashes) → argparse action, for the keys a file may set."""
    options = {}
    for action in flags.actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            longs = [s for s in longs if not s.startswith("--no-")]
        options[longs[0][2:]] = action
    return options


def read_config(path, flags):
    """Reads and checks a config file for a command (its `CommandFlags`).

    Returns:
        dict argparse `dest` → value, ready for `parser.set_defaults`.

    Raises:
        CLIError: unreadable file, unknown key, or a value of the wrong type.
    """
    path = os.fspath(path)
    content = _load(path)
    if not isinstance(content, dict):
        raise CLIError(f"{path}: expected a table of option = value pairs.")
    options = config_options(flags)
    values = {}
    for key, value in content.items():
        name = str(key).replace("_", "-")
        if name not in options:
            valid = ", ".join(sorted(options))
            close = difflib.get_close_matches(name, list(options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CLIError(
                f"{path}: unknown key {key!r} for `{flags.parser.prog}`{hint}; valid keys: "
                f"{valid}."
            )
        action = options[name]
        values[action.dest] = _convert(path, key, value, action)
    return values


def parse_args(parser, argv=None):
    """Parses `argv`; a sub-command's `--config FILE` fills what is not given.

    Returns:
        `argparse.Namespace`.
    """
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    if not path:
        return args
    flags = args.command_flags
    flags.parser.set_defaults(**read_config(path, flags))
    return parser.parse_args(argv)


def _load(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise CLIError(
            f"{path}: cannot read the config file ({error.strerror})."
        ) from None
    if path.lower().endswith(".json"):
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CLIError(f"{path}: invalid JSON ({error}).") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CLIError(f"{path}: invalid TOML ({error}).") from None


def _convert(path, key, value, action):
    """A config value as the flag would have parsed it."""
    where = f"{path}: {key}"
    if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
        if not isinstance(value, bool):
            raise CLIError(f"{where} must be true or false; got {value!r}.")
        # `store_false` flags hold the opposite of what they are named after.
        return (not value) if action.const is False else value
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        items = value if isinstance(value, list) else [value]
        return [_convert_one(where, item, action) for item in items]
    return _convert_one(where, value, action)


def _convert_one(where, value, action):
    kind = action.type
    if isinstance(value, bool) and kind is not None and kind is not bool:
        raise CLIError(f"{where} must not be a boolean; got {value!r}.")
    try:
        if kind is None:
            if isinstance(value, (dict, list)):
                raise TypeError("expected a single value")
            converted = str(value)
        elif kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError("not an integer")
            converted = int(value)
        elif isinstance(value, (str, int, float)) or kind not in (int, float):
            converted = kind(value)
        else:
            raise TypeError(f"expected {kind.__name__}")
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        raise CLIError(f"{where}: invalid value {value!r} ({error}).") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise CLIError(f"{where}: {converted!r} is not one of {choices}.")
    return converted
