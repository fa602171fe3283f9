"""A frozen causal LM inside a trainable ``PreTrainedModel``: attached, frozen and proven, never saved.

mPLUG-video keeps its decoder frozen (Youku-mPLUG, official ``freeze_text_decoder: true``): at paper scale the
decoder is GBs that no checkpoint of the trainable parts should copy. `FrozenLMPreTrainedModel` gives a model whose
config names the LM's folder (``config.lm_path``) these behaviours, on top of transformers' own save/load:

- ``save_pretrained`` leaves the LM's tensors out (``_keys_to_ignore_on_save``, filled when the LM is attached);
- ``from_pretrained`` builds the model on the meta device without the LM (the subclass's ``__init__`` skips it
  there), loads the trainable weights strictly, then attaches the LM read from ``lm_path`` (safetensors only);
  the LM is attached after ``post_init``, so transformers' weight initialisation never touches it;
- the LM is frozen (``requires_grad_(False)``, eval mode) and the trainable-parameter count is checked and logged
  (STYLE.md rule 8);
- activation checkpointing reaches the LM's blocks although the LM stays in eval mode (see `train`).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer

from vlstudy.models.loading import StrictPreTrainedModel
from vlstudy.models.text_lm import load_lm

__all__ = ["FrozenLMPreTrainedModel"]

logger = logging.getLogger("vlstudy.models")


class FrozenLMPreTrainedModel(StrictPreTrainedModel):
    """Base of models with a frozen LM at ``self.lm`` (None until attached) read from ``config.lm_path``."""

    def attach_lm(self, lm: PreTrainedModel) -> None:
        """Attach the frozen LM (after ``post_init``), keep it out of saves, freeze it and prove it."""
        self.lm = lm.to(self.device)
        self._keys_to_ignore_on_save = {f"lm.{name}" for name in lm.state_dict()}
        self.lm.requires_grad_(False)
        self.train(self.training)
        lm_count = sum(p.numel() for p in self.lm.parameters())
        self.num_total = sum(p.numel() for p in self.parameters())
        self.num_trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        if self.num_trainable != self.num_total - lm_count:
            raise RuntimeError(f"trainable parameters {self.num_trainable} != all {self.num_total} - LM {lm_count}")
        logger.info("%s: %d trainable of %d parameters (%.2f%%); LM frozen (%d parameters)", type(self).__name__,
                    self.num_trainable, self.num_total, 100 * self.trainable_ratio, lm_count)

    @property
    def trainable_ratio(self) -> float:
        """Trainable / all parameters (Youku-mPLUG: 1.7% with a frozen 7B Bloomz)."""
        return self.num_trainable / self.num_total

    @classmethod
    def from_pretrained(cls, directory: str | Path, *args: Any, **kwargs: Any) -> FrozenLMPreTrainedModel:
        """Load a `save_pretrained` folder strictly, then attach the LM read from the config's ``lm_path`` (pass
        ``lm_path=...`` to read it from elsewhere)."""
        model = super().from_pretrained(directory, *args, **kwargs)
        model.attach_lm(load_lm(model.config.lm_path, dtype=kwargs.get("dtype")))
        return model

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> None:
        """Every weight but the LM's (the config points to it), atomically; raises if the LM has no folder."""
        if self.config.lm_path is None:
            raise ValueError("this model's LM was built from config.lm and has no folder: save it with "
                             "text_lm.save_text_lm and set lm_path")
        super().save_pretrained(directory, **kwargs)

    def train(self, mode: bool = True) -> FrozenLMPreTrainedModel:
        """Training mode everywhere except the frozen LM, which stays in eval mode (no dropout).

        Under activation checkpointing the LM's blocks alone are marked training (``GradientCheckpointingLayer``
        recomputes a block in the backward pass only then); their attention and dropout modules stay in eval mode.
        """
        super().train(mode)
        if getattr(self, "lm", None) is not None:
            self.lm.eval()
            for layer in self.lm.modules():
                if isinstance(layer, GradientCheckpointingLayer):
                    layer.training = mode and layer.gradient_checkpointing
        return self

    def _set_gradient_checkpointing(self, *args: Any, **kwargs: Any) -> None:
        super()._set_gradient_checkpointing(*args, **kwargs)
        self.train(self.training)

    @contextmanager
    def lm_inference(self):
        """The LM fully in eval mode (key/value caches usable) while decoding or scoring; modes restored after."""
        modes = {m: m.training for m in self.lm.modules()}
        self.lm.eval()
        try:
            yield
        finally:
            for module, training in modes.items():
                module.training = training
