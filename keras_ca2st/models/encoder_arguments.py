"""One owner per argument set: a backbone takes and saves its encoder's arguments.

`CA2STBackbone` wraps a `CrossExpertEncoder` and `LAVISHBackbone` a
`LAVISHEncoder` in a functional model. The encoder layer declares the
arguments (its `__init__` signature) and serialises them (its `get_config`);
the backbone forwards what it is given and saves what the encoder saves, so
an argument added to an encoder needs no change in its backbone.
"""

import inspect


def argument_names(encoder_class):
    """The named arguments of `encoder_class.__init__` (no `self`, no `**kwargs`)."""
    parameters = inspect.signature(encoder_class.__init__).parameters.values()
    return tuple(
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    )


def pop_arguments(encoder_class, kwargs):
    """Moves the encoder's arguments out of `kwargs` into a new dict."""
    return {
        name: kwargs.pop(name)
        for name in argument_names(encoder_class)
        if name in kwargs
    }


def saved_arguments(encoder):
    """The encoder's own arguments as its `get_config` saves them."""
    config = encoder.get_config()
    return {name: config[name] for name in argument_names(type(encoder))}
