"""Composable token masks: which tokens may come next. Pure functions on boolean tensors.

A mask is a bool tensor ``[V]`` (or ``[B, V]``) with True = allowed. Constraints are stated in
the OUTPUT key; the model writes in C major / A minor, so each mask takes ``shift``, the
semitones from the model's key to the output key, and tests ``model pitch + shift``.
"""

from __future__ import annotations

import re

import torch

from tunesmith.encoding import Vocabulary
from tunesmith.errors import TunesmithError
from tunesmith.song import SCALES, note_number as _note_number


def note_number(name: str) -> int:
    """MIDI number of a note name ("C4" = 60, "Bb3" = 58) or a plain number; TunesmithError if unreadable."""
    try:
        return _note_number(name)
    except ValueError as exc:
        raise TunesmithError(str(exc)) from None


def parse_range(text: str) -> tuple[int, int]:
    """Lowest and highest MIDI pitch of a range written "C4-G5" (or "60-79").

    Parameters
    ----------
    text : str
        Two notes joined by "-" (a flat may also be written "-", as in "B--C5", but "b" reads better).

    Returns
    -------
    tuple of int
        ``(low, high)`` with ``low <= high``.
    """
    match = re.match(r"^\s*(\S+?\d)\s*-\s*(\S+)\s*$", text)
    if not match:
        raise TunesmithError(f"cannot read pitch range {text!r}: write it like C4-G5")
    low, high = note_number(match.group(1)), note_number(match.group(2))
    if low > high:
        raise TunesmithError(f"pitch range {text!r} goes downwards: write the low note first")
    return low, high


def _pitch_mask(vocab: Vocabulary, allowed) -> torch.Tensor:
    mask = torch.ones(len(vocab), dtype=torch.bool)
    for pitch, token_id in zip(vocab.pitches, vocab.pitch_ids, strict=True):
        mask[token_id] = bool(allowed(pitch))
    return mask


def scale_mask(vocab: Vocabulary, tonic_pc: int, mode: str, shift: int = 0) -> torch.Tensor:
    """Allow only the pitches of a key's scale (rests, holds and the end stay allowed).

    Parameters
    ----------
    vocab : Vocabulary
        The model's tokens.
    tonic_pc : int
        Tonic pitch class of the output key (0 = C).
    mode : str
        "major" or "minor" (see ``SCALES``).
    shift : int
        Semitones added to a model pitch to get the output pitch.

    Returns
    -------
    torch.Tensor
        Bool ``[V]``, True where allowed.
    """
    degrees = set(SCALES[mode])
    return _pitch_mask(vocab, lambda p: (p + shift - tonic_pc) % 12 in degrees)


def range_mask(vocab: Vocabulary, low: int, high: int, shift: int = 0) -> torch.Tensor:
    """Allow only pitches whose output pitch lies in ``[low, high]`` (MIDI numbers, inclusive).

    Parameters
    ----------
    vocab : Vocabulary
        The model's tokens.
    low, high : int
        Range in the output key.
    shift : int
        Semitones added to a model pitch to get the output pitch.

    Returns
    -------
    torch.Tensor
        Bool ``[V]``, True where allowed.
    """
    return _pitch_mask(vocab, lambda p: low <= p + shift <= high)


def combine(*masks: torch.Tensor) -> torch.Tensor:
    """Tokens every mask allows (logical AND; masks broadcast, ``[V]`` with ``[B, V]``)."""
    result = masks[0]
    for mask in masks[1:]:
        result = result & mask
    return result


def require_pitches(mask: torch.Tensor, vocab: Vocabulary, described: str) -> torch.Tensor:
    """Return ``mask`` unchanged, or raise TunesmithError when it allows no pitch at all.

    Parameters
    ----------
    mask : torch.Tensor
        Bool ``[V]``.
    vocab : Vocabulary
        The model's tokens.
    described : str
        The constraints in words, quoted in the error.
    """
    if not bool(mask[vocab.pitch_ids].any()):
        low, high = vocab.pitches[0], vocab.pitches[-1]
        raise TunesmithError(f"the constraints ({described}) allow no pitch the model knows (it knows MIDI {low}..{high})")
    return mask


def apply_mask(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Set forbidden tokens' logits to ``-inf``.

    Parameters
    ----------
    logits : torch.Tensor
        Scores ``[B, V]``.
    mask : torch.Tensor
        Bool ``[V]`` or ``[B, V]``, True where allowed.

    Returns
    -------
    torch.Tensor
        A new tensor; allowed entries unchanged.
    """
    return logits.masked_fill(~mask, float("-inf"))
