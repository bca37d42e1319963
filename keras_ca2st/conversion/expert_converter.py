"""The protocol every expert converter follows, and the steps they share.

An expert converter (`clip_converter.CLIP`, `videomae_converter.VIDEOMAE`,
`ast_converter.AST`) is one `ExpertConverter`: which expert it builds, how to
read that expert's arguments off a checkpoint, and how to copy the tensors.
Everything around those three — reading the source, checking an existing
expert against the checkpoint, building, tracking unused keys — is written
once here, so each converter file holds only its key maps.
"""

import dataclasses

from keras_ca2st.conversion.checkpoint import as_checkpoint
from keras_ca2st.conversion.vit_blocks import check_architecture
from keras_ca2st.conversion.weight_loader import WeightLoader


@dataclasses.dataclass(frozen=True)
class ExpertConverter:
    """How one kind of expert is read from its checkpoints.

    Args:
        expert_class: the expert layer class the converter builds.
        source_config: `(checkpoint, **hints) → (fixed, defaults)`: the expert
            arguments the checkpoint's tensors (and config) fix, and those it
            only suggests (a user's value wins over a default, never over a
            fixed one).
        copy_weights: `(expert, loader)`: assigns every tensor through the
            `WeightLoader` and ends with `loader.check_all_used(...)`.
        hints: expert arguments `source_config` needs to read a checkpoint
            that does not store them (AST: mel bins and patch stride).

    Example:
    ```python
    from keras_ca2st.conversion.clip_converter import CLIP
    expert = CLIP.convert("clip-vit-base-patch16/", num_frames=16)
    CLIP.load(other_expert, read_checkpoint("clip-vit-base-patch16/"))
    ```
    """

    expert_class: type
    source_config: object
    copy_weights: object
    hints: tuple = ()

    def load(self, expert, checkpoint):
        """Copy `checkpoint` into `expert`, which must fit it; returns `expert`."""
        hints = {name: getattr(expert, name) for name in self.hints}
        fixed, _ = self.source_config(checkpoint, **hints)
        check_architecture(expert, fixed, checkpoint.origin)
        if not expert.built:
            expert.build()
        self.copy_weights(expert, WeightLoader(checkpoint))
        return expert

    def convert(self, source, allow_torchscript=False, **kwargs):
        """A new built expert holding the weights of `source`.

        Args:
            source: a checkpoint file, a Hugging Face model directory or a
                `Checkpoint`.
            allow_torchscript: read TorchScript archives (runs their code).
            **kwargs: expert arguments the checkpoint does not fix.
        """
        checkpoint = as_checkpoint(source, allow_torchscript=allow_torchscript)
        hints = {name: kwargs.get(name) for name in self.hints}
        fixed, defaults = self.source_config(checkpoint, **hints)
        expert = self.expert_class(**{**defaults, **fixed, **kwargs})
        expert.build()
        return self.load(expert, checkpoint)
