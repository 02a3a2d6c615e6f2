"""Composable logit masks: which tokens may come next. Pure functions on boolean tensors.

A mask is a bool tensor ``[V]`` (or ``[B, V]``) with True = allowed. Constraints are stated in
the OUTPUT key; the model writes in C major / A minor, so each mask takes ``shift``, the
semitones from the model's key to the output key, and tests ``model pitch + shift``.
"""

from __future__ import annotations

import re

import torch

from tunesmith.encoding import Vocabulary
from tunesmith.errors import TunesmithError
from tunesmith.song import tonic_pitch_class

# Pitch classes above the tonic. Minor is natural minor plus the raised 7th (the leading tone
# folk minor tunes use at cadences), so a constrained minor melody can still close on the tonic.
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10, 11)}
_NOTE = re.compile(r"^\s*([A-Ga-g])([#b-]*)(-?\d+)\s*$")


def note_number(name: str) -> int:
    """MIDI number of a note name ("C4" = 60, "Bb3" = 58, "F#5" = 78) or of a plain number ("67")."""
    text = name.strip()
    if text.isdigit():
        number = int(text)
    else:
        match = _NOTE.match(text)
        if not match:
            raise TunesmithError(f"cannot read note {name!r}: write it like C4, F#5, Bb3 or a MIDI number")
        letter, accidentals, octave = match.groups()
        pc = tonic_pitch_class(letter)
        pc += accidentals.count("#") - accidentals.count("b") - accidentals.count("-")
        number = 12 * (int(octave) + 1) + pc
    if not 0 <= number <= 127:
        raise TunesmithError(f"note {name!r} is outside MIDI 0..127")
    return number


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


def structure_mask(vocab: Vocabulary, previous: torch.Tensor, has_note: torch.Tensor,
                   at_bar_line: bool = True) -> torch.Tensor:  # fmt: skip
    """Rules every melody follows: never ``<pad>``/``<s>``, no ``</s>`` before a note or away from
    a bar line (a song ends with a whole bar), no ``_`` right after ``<s>``.

    Parameters
    ----------
    vocab : Vocabulary
        The model's tokens.
    previous : torch.Tensor
        Token ids ``[B]`` of the step before the one being chosen.
    has_note : torch.Tensor
        Bool ``[B]``: the melody already holds at least one pitched note.
    at_bar_line : bool
        The step being chosen starts a bar, so the melody may end before it.

    Returns
    -------
    torch.Tensor
        Bool ``[B, V]``, True where allowed.
    """
    mask = torch.ones(previous.shape[0], len(vocab), dtype=torch.bool, device=previous.device)
    mask[:, vocab.pad] = False
    mask[:, vocab.start] = False
    mask[:, vocab.end] = has_note & at_bar_line
    mask[:, vocab.hold] = previous != vocab.start
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
