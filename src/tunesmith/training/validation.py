"""Validation figures of a training run: conditional, two-stage and form-hidden.

For a model without form inputs this is :func:`tunesmith.likelihood.evaluate_model`. A
form-aware model reads each validation song's own form (its phrases and letters), so its
plain figures are p(melody | form). Two more are added so the unconditional figure is never
hidden:

``hidden_bits_per_step``, ``hidden_pitch_bits_per_note``
    every song scored with its form unknown (the model's all-zero form input): p(melody) as the
    model alone gives it;
``prior_bits_per_song``, ``two_stage_bits_per_step``, ``two_stage_pitch_bits_per_note``
    the conditional figures plus the form's code length under a prior fitted on the training
    songs (:mod:`tunesmith.form.prior`): an upper bound on −log2 p(melody) under tunesmith's
    own two-stage process (a form, then the notes); pitch carries all the prior bits.

Early stopping and ``best.pt`` still follow the conditional loss: that is the situation at
generation time, where the form is planned before a note is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from tunesmith.form.prior import songs_prior_bits, two_stage
from tunesmith.likelihood import evaluate_model


class FormHidden(nn.Module):
    """A form-aware model seen with every song's form unknown (``form_inputs`` False, so
    :func:`evaluate_model` passes no form, which the model reads as all zeros)."""

    form_inputs = False

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model

    def forward(self, *args: Any, form: Any = None, **kwargs: Any) -> Any:
        return self.inner(*args, form=None, **kwargs)


def prior_bits(train_examples: Sequence[Any], val_examples: Sequence[Any]) -> float:
    """Summed form code length (bits) of the validation songs under the training songs' prior."""
    return float(sum(songs_prior_bits([e.song for e in train_examples], [e.song for e in val_examples])))


def validation_passes(model: Any) -> list[str]:
    """The passes over the validation songs a model needs: ``given`` (its plain figures) and, for a
    form-aware model, ``hidden`` (every form unknown). Independent, so ranks can share them."""
    core = getattr(model, "module", model)
    return ["given", "hidden"] if getattr(core, "form_inputs", False) else ["given"]


def validation_pass(name: str, model: Any, val_examples: Sequence[Any], vocab: Any, modes: Sequence[str],
                    meters: Sequence[str], steps_per_quarter: int, device: Any = "cpu") -> dict[str, float]:  # fmt: skip
    """One of :func:`validation_passes`: :func:`evaluate_model`'s figures of the model as it is
    (``given``) or with every song's form unknown (``hidden``)."""
    core = getattr(model, "module", model)
    scored = FormHidden(core) if name == "hidden" else model
    return evaluate_model(scored, val_examples, vocab, modes, meters, steps_per_quarter, device)


def combine_passes(passes: dict[str, dict[str, float]], form_prior_bits: float | None = None) -> dict[str, float]:
    """The validation figures from the passes' results: the ``given`` figures, the form-hidden
    ones and (with ``form_prior_bits``, from :func:`prior_bits`) the two-stage ones."""
    metrics = dict(passes["given"])
    if "hidden" not in passes:
        return metrics
    metrics["hidden_bits_per_step"] = passes["hidden"]["bits_per_step"]
    metrics["hidden_pitch_bits_per_note"] = passes["hidden"]["pitch_bits_per_note"]
    if form_prior_bits is not None:
        metrics.update(two_stage(metrics, form_prior_bits))
    return metrics


def validation_metrics(model: Any, val_examples: Sequence[Any], vocab: Any, modes: Sequence[str],
                       meters: Sequence[str], steps_per_quarter: int, device: Any = "cpu",
                       form_prior_bits: float | None = None) -> dict[str, float]:  # fmt: skip
    """:func:`evaluate_model`'s figures, and for a form-aware model the form-hidden ones and (with
    ``form_prior_bits``, from :func:`prior_bits`) the two-stage ones: every pass in this process."""
    passes = {name: validation_pass(name, model, val_examples, vocab, modes, meters, steps_per_quarter, device)
              for name in validation_passes(model)}  # fmt: skip
    return combine_passes(passes, form_prior_bits)
