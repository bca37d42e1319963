"""The flags of the `ca2st` commands: shared ones declared once, all recorded.

A command builds its parser through `CommandFlags`, which adds each flag and
remembers it, so that `--config FILE` (`config.py`) knows exactly the keys a
file may set without reading argparse's internals. The flags several commands
share (`--model`, `--dataset`, `--views`, ...) are declared once here as
`Option`s; a command adds one with its own help where the meaning differs.
"""

import dataclasses

from keras_ca2st.data import RECIPE_NAMES


def parse_views(text):
    """`"CLIPSxCROPS"` → `(clips, crops)`, e.g. `"2x3"` → `(2, 3)`."""
    try:
        clips, crops = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"expected CLIPSxCROPS such as 2x3; got {text!r}") from None
    if clips < 1 or crops < 1:
        raise ValueError(f"views must be positive; got {text!r}")
    return clips, crops


@dataclasses.dataclass(frozen=True)
class Option:
    """One flag: its option strings and `add_argument` keywords."""

    flags: tuple
    settings: dict


MODEL = Option(("--model",), dict(metavar="RUN_DIR|FILE.keras"))
DATASET = Option(("--dataset",), dict(metavar="RECIPE", choices=RECIPE_NAMES))
DATA_ROOT = Option(("--data-root",), dict(metavar="DIR"))
CLASS_NAMES = Option(("--class-names",), dict(metavar="FILE|HEAD=FILE,..."))
VIEWS = Option(("--views",), dict(type=parse_views, metavar="CLIPSxCROPS"))
MISSING_AUDIO = Option(
    ("--missing-audio",), dict(choices=("error", "silence"), default="error")
)
BATCH_SIZE = Option(("--batch-size",), dict(type=int, default=8, metavar="N"))
WORKERS = Option(
    ("--workers",),
    dict(type=int, default=4, metavar="N", help="batch loader threads"),
)
JSON = Option(("--json",), dict(action="store_true"))
CONFIG = Option(
    ("--config",),
    dict(
        metavar="FILE",
        help="TOML or JSON file of the same keys as the long flags (dashes or "
        "underscores); flags on the command line override it",
    ),
)


class CommandFlags:
    """Adds a sub-command's flags and remembers the ones a config file may set.

    Args:
        parser: the sub-command's `argparse.ArgumentParser`.

    Example:
    ```python
    flags = CommandFlags(commands.add_parser("evaluate"))
    flags.add_shared(MODEL, help="required")
    flags.add("--annotations", metavar="FILE", help="required")
    flags.finish(handler=run_evaluation)
    ```
    """

    def __init__(self, parser):
        self.parser = parser
        self.actions = []

    def group(self, title):
        """An argument group of the parser (pass it as `group=`)."""
        return self.parser.add_argument_group(title)

    def add(self, *flags, group=None, **settings):
        """`add_argument` on the parser (or `group`); long flags become config keys."""
        action = (group or self.parser).add_argument(*flags, **settings)
        if action.option_strings:
            self.actions.append(action)
        return action

    def add_shared(self, option, group=None, **overrides):
        """Adds a shared `Option`, with this command's own help or default."""
        return self.add(*option.flags, group=group, **{**option.settings, **overrides})

    def finish(self, handler):
        """Adds `--config FILE` and the command's handler."""
        self.parser.add_argument(*CONFIG.flags, **CONFIG.settings)
        self.parser.set_defaults(handler=handler, command_flags=self)
        return self.parser
