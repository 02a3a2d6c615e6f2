"""Prediction metrics from next-token distributions: bits/step, bits/event, pitch bits/note, accuracy.

Model-agnostic: every function takes full next-token distributions as natural-log probabilities
(``log_probs[T, V]``, numpy or torch) with the target ids (``targets[T]``) and the
:class:`~tunesmith.encoding.Vocabulary`, so the LSTM and an n-gram baseline are scored by the
same code. A song's targets are its body tokens followed by ``</s>`` (never ``<s>``, never pad).

Use :func:`song_statistics` per song and :func:`summarize` on their sum, or
:func:`prediction_metrics` for both at once. :func:`evaluate_model` runs a MelodyLSTM over
corpus examples and returns the same dictionary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesmith.encoding import Vocabulary

LOG2 = math.log(2.0)
# The totals one song contributes; summarize() turns their sums into the metrics.
STAT_KEYS = ("songs", "steps", "nats", "correct", "onsets", "onset_correct", "events", "notes", "pitch_nats")


def _as_numpy(array: Any, dtype: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=dtype)


def song_statistics(log_probs: Any, targets: Any, vocab: Vocabulary) -> dict[str, float]:
    """Summed prediction statistics of one song (or any run of target steps).

    Parameters
    ----------
    log_probs : array [T, V]
        Natural-log next-token distribution at each target step (rows sum to 1 in probability).
    targets : array [T] of int
        The token id that actually came at each step; ``vocab.pad`` entries are skipped.
    vocab : Vocabulary
        Says which ids are pitches, the hold ``_``, the rest ``r`` and ``</s>``.

    Returns
    -------
    dict
        ``songs`` (1), ``steps`` (scored targets), ``nats`` (Σ −ln p(target)), ``correct``
        (argmax = target), ``onsets`` (targets other than ``_``, ``</s>`` included),
        ``onset_correct``, ``events`` (note and rest onsets), ``notes`` (pitch onsets),
        ``pitch_nats`` (Σ over pitch onsets of −ln p(pitch) / Σ_pitches p).
    """
    log_probs = _as_numpy(log_probs, np.float64)
    targets = _as_numpy(targets, np.int64).reshape(-1)
    if log_probs.shape != (targets.size, len(vocab)):
        raise ValueError(f"log_probs has shape {log_probs.shape}, expected ({targets.size}, {len(vocab)})")
    keep = targets != vocab.pad
    log_probs, targets = log_probs[keep], targets[keep]
    target_lp = log_probs[np.arange(targets.size), targets]
    correct = log_probs.argmax(axis=1) == targets
    onset = targets != vocab.hold
    pitch_ids = np.asarray(vocab.pitch_ids, dtype=np.int64)
    is_pitch = np.isin(targets, pitch_ids)
    pitch_nats = 0.0
    if is_pitch.any():
        pitch_lp = log_probs[is_pitch][:, pitch_ids]
        # log Σ_pitches p, computed stably: the renormaliser that gives rhythm away
        top = pitch_lp.max(axis=1, keepdims=True)
        pitch_norm = top[:, 0] + np.log(np.exp(pitch_lp - top).sum(axis=1))
        pitch_nats = float(np.sum(pitch_norm - target_lp[is_pitch]))
    return {
        "songs": 1,
        "steps": int(targets.size),
        "nats": float(-target_lp.sum()),
        "correct": int(correct.sum()),
        "onsets": int(onset.sum()),
        "onset_correct": int((correct & onset).sum()),
        "events": int((is_pitch | (targets == vocab.rest)).sum()),
        "notes": int(is_pitch.sum()),
        "pitch_nats": pitch_nats,
    }


def add_statistics(total: dict[str, float], song: dict[str, float]) -> dict[str, float]:
    """Element-wise sum of two statistics dictionaries (a new dict)."""
    return {k: total.get(k, 0) + song.get(k, 0) for k in STAT_KEYS}


def summarize(stats: dict[str, float]) -> dict[str, float]:
    """Metrics of summed statistics; every ratio is pooled over all songs (token-weighted).

    Returns
    -------
    dict
        ``loss`` (mean nats per step), ``bits_per_step`` (mean −log2 p over all targets),
        ``bits_per_event`` (total bits ÷ total note and rest onsets, i.e. pooled over songs,
        not a mean of per-song ratios), ``pitch_bits_per_note`` (mean over pitch onsets of
        −log2 p(pitch) / Σ_pitches p: pitch predicted with the rhythm given), ``accuracy``
        (share of argmax hits), ``onset_accuracy`` (the same over targets that are not ``_``),
        plus the counts ``songs``, ``steps``, ``events``, ``notes``. An empty ratio is NaN.
    """

    def ratio(num: float, den: float) -> float:
        return float(num) / den if den else float("nan")

    return {
        "loss": ratio(stats["nats"], stats["steps"]),
        "bits_per_step": ratio(stats["nats"] / LOG2, stats["steps"]),
        "bits_per_event": ratio(stats["nats"] / LOG2, stats["events"]),
        "pitch_bits_per_note": ratio(stats["pitch_nats"] / LOG2, stats["notes"]),
        "accuracy": ratio(stats["correct"], stats["steps"]),
        "onset_accuracy": ratio(stats["onset_correct"], stats["onsets"]),
        "songs": int(stats["songs"]),
        "steps": int(stats["steps"]),
        "events": int(stats["events"]),
        "notes": int(stats["notes"]),
    }


def prediction_metrics(log_probs: Any, targets: Any, vocab: Vocabulary) -> dict[str, float]:
    """Metrics of one song (``log_probs[T, V]``, ``targets[T]``) or of lists of per-song arrays.

    Parameters
    ----------
    log_probs : array [T, V] or sequence of arrays [T_i, V]
        Natural-log next-token distributions.
    targets : array [T] or sequence of arrays [T_i]
        Target ids, aligned with ``log_probs``.
    vocab : Vocabulary

    Returns
    -------
    dict
        See :func:`summarize`.
    """
    if _is_single(log_probs):
        return summarize(song_statistics(log_probs, targets, vocab))
    if len(log_probs) != len(targets):
        raise ValueError(f"{len(log_probs)} log-prob arrays but {len(targets)} target arrays")
    total = dict.fromkeys(STAT_KEYS, 0)
    for lp, tg in zip(log_probs, targets):
        total = add_statistics(total, song_statistics(lp, tg, vocab))
    return summarize(total)


def _is_single(log_probs: Any) -> bool:
    return (hasattr(log_probs, "ndim") and log_probs.ndim == 2) or (
        isinstance(log_probs, Sequence) and len(log_probs) > 0 and np.ndim(log_probs[0]) == 1
    )


def evaluate_model(model: Any, examples: Sequence[Any], vocab: Vocabulary, modes: Sequence[str],
                   meters: Sequence[str], steps_per_quarter: int, device: Any = "cpu",
                   batch_size: int = 64) -> dict[str, float]:  # fmt: skip
    """Run a MelodyLSTM (teacher forcing, eval mode) over corpus examples and score its predictions.

    Parameters
    ----------
    model : MelodyLSTM (or a DDP wrapper of one)
    examples : sequence of Example
        Songs with their body tokens; each is scored on ``tokens + [</s>]``.
    vocab, modes, meters : the vocabularies the model was trained with (checkpoint keys).
    steps_per_quarter : int
        Encoding resolution, for the step-within-bar positions.
    device : torch device or name
    batch_size : int
        Songs per forward pass.

    Returns
    -------
    dict
        See :func:`summarize`.
    """
    import torch

    from tunesmith.training.data import pad_batch, pad_form, tensorize

    core = getattr(model, "module", model)  # a DDP wrapper holds the model as .module
    uses_form = bool(getattr(core, "form_inputs", False))  # a form-aware model is scored with the songs' forms
    songs = tensorize(examples, vocab, modes, meters, steps_per_quarter, form=uses_form)
    order = sorted(range(len(songs)), key=lambda i: len(songs[i].inputs))  # similar lengths share a batch
    total = dict.fromkeys(STAT_KEYS, 0)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = [songs[i] for i in order[start : start + batch_size]]
            inputs, positions, targets, mode, meter = pad_batch(batch, vocab.pad, device)
            logits, _ = model(inputs, positions, mode, meter, form=pad_form(batch, device))
            log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
            for row, song in enumerate(batch):
                length = len(song.targets)
                total = add_statistics(total, song_statistics(log_probs[row, :length], song.targets, vocab))
    model.train(was_training)
    return summarize(total)

