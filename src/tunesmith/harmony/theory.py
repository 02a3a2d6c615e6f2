"""Chord facts the harmoniser shares: qualities, chord tones, figures, roman numerals, spelling.

A chord *function* is ``(degree, quality)``: the root's semitones above the tonic and one of
``QUALITIES``. Roman numerals and symbols are derived from it for a given key.
"""

from __future__ import annotations

import re

from tunesmith.song import PITCH_CLASSES

QUALITIES = ("maj", "min", "7", "dim", "maj7", "min7")
# Semitones above the root of each quality's tones.
CHORD_TONES = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10),
    "dim": (0, 3, 6), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
}  # fmt: skip
SYMBOL_SUFFIX = {"maj": "", "min": "m", "7": "7", "dim": "dim", "maj7": "maj7", "min7": "m7"}
# Written chord suffixes (after the root) → quality. Sixths, ninths, suspensions and added tones
# fold onto the chord they colour; the augmented triad (four in the corpus) onto the major.
_SUFFIXES = {
    "": "maj", "6": "maj", "sus": "maj", "sus4": "maj", "a": "maj", "aug": "maj", "+": "maj", "add9": "maj",
    "m": "min", "min": "min", "m6": "min", "-": "min",
    "7": "7", "9": "7", "7b9": "7", "7#9": "7", "13": "7", "a7": "7", "7sus": "7", "7sus4": "7",
    "d": "dim", "dim": "dim", "o": "dim", "°": "dim", "dim7": "dim", "o7": "dim", "m7b5": "dim",
    "maj7": "maj7", "M7": "maj7", "ma7": "maj7", "m7": "min7", "min7": "min7", "-7": "min7",
}  # fmt: skip
_FIGURE = re.compile(r"^\(?\s*([A-Ga-g])([#b\-]?)([^/)]*)(?:/[^)]*)?\)?$")
# Roman numeral of each degree; the scale's own degrees plain, the others with an accidental.
_NUMERALS = {
    "major": {0: "I", 1: "bII", 2: "II", 3: "bIII", 4: "III", 5: "IV", 6: "#IV", 7: "V", 8: "bVI", 9: "VI", 10: "bVII", 11: "VII"},
    "minor": {0: "I", 1: "bII", 2: "II", 3: "III", 4: "#III", 5: "IV", 6: "#IV", 7: "V", 8: "VI", 9: "#VI", 10: "VII", 11: "VII"},
}  # fmt: skip
# Letter steps above the tonic's letter for each degree's numeral (I = 0 … VII = 6).
_LETTER_STEP = {"I": 0, "II": 1, "III": 2, "IV": 3, "V": 4, "VI": 5, "VII": 6}
_LETTERS = "CDEFGAB"


def parse_figure(figure: str) -> tuple[int, str] | None:
    """``(root pitch class, quality)`` of a written chord symbol, None for anything else.

    >>> parse_figure("F#m"), parse_figure("A7/c+"), parse_figure("(E7)"), parse_figure("Bbmaj7")
    ((6, 'min'), (9, '7'), (4, '7'), (10, 'maj7'))
    """
    match = _FIGURE.match(figure.strip())
    if not match:
        return None
    letter, accidental, suffix = match.groups()
    quality = _SUFFIXES.get(suffix.strip())
    if quality is None:
        return None
    root = PITCH_CLASSES[letter.upper()] + {"#": 1, "b": -1, "-": -1}.get(accidental, 0)
    return root % 12, quality


def chord_tones(degree: int, quality: str) -> frozenset[int]:
    """Pitch classes (relative to the same reference as ``degree``) of a chord."""
    return frozenset((degree + t) % 12 for t in CHORD_TONES[quality])


def roman(degree: int, quality: str, mode: str) -> str:
    """Roman numeral of a chord function: upper case for major-third chords, ° for diminished.

    >>> roman(7, "7", "major"), roman(2, "min", "major"), roman(10, "maj", "minor"), roman(11, "dim", "major")
    ('V7', 'ii', 'VII', 'vii°')
    """
    numeral = _NUMERALS[mode][degree % 12]
    if quality in ("min", "dim", "min7"):
        numeral = numeral[:1] + numeral[1:].lower() if numeral[0] in "b#" else numeral.lower()
    return numeral + {"maj": "", "min": "", "7": "7", "dim": "°", "maj7": "maj7", "min7": "7"}[quality]


def spell_root(tonic: str, mode: str, degree: int) -> str:
    """The root's name spelt for the key, with ``#``/``b`` ("Bb", "F#"): the letter of its numeral.

    >>> spell_root("F", "major", 10), spell_root("D", "major", 6), spell_root("B-", "major", 5)
    ('Eb', 'G#', 'Eb')
    """
    name = tonic.strip().replace("b", "-") if len(tonic.strip()) > 1 else tonic.strip()
    name = name[:1].upper() + name[1:]
    tonic_pc = PITCH_CLASSES[name]
    numeral = _NUMERALS[mode][degree % 12].lstrip("b#")
    letter = _LETTERS[(_LETTERS.index(name[0]) + _LETTER_STEP[numeral]) % 7]
    offset = ((tonic_pc + degree) - PITCH_CLASSES[letter] + 6) % 12 - 6
    if abs(offset) > 2:  # a spelling needing triple accidentals: fall back to the plain name
        return ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"][(tonic_pc + degree) % 12]
    return letter + ("#" * offset if offset > 0 else "b" * -offset)


def symbol(root_name: str, quality: str) -> str:
    """Chord symbol text: ``symbol("F#", "min") == "F#m"``."""
    return root_name + SYMBOL_SUFFIX[quality]


def beat_structure(meter: str) -> tuple[float, int]:
    """(beat length in quarters, beats per bar) of a meter: 6/8 → (1.5, 2), 3/4 → (1.0, 3).

    Raises ValueError for a meter the harmoniser cannot group into beats.
    """
    try:
        num, den = (int(x) for x in meter.split("/"))
    except ValueError:
        raise ValueError(f"cannot read meter {meter!r}") from None
    if den not in (2, 4, 8, 16) or num < 1:
        raise ValueError(f"meter {meter!r} has no beat the harmoniser knows")
    unit = 4 / den
    if num % 3 == 0 and num > 3:
        return unit * 3, num // 3
    if num in (1, 2, 3, 4, 5):
        return unit, num
    raise ValueError(f"meter {meter!r} has no beat grouping the harmoniser knows (2, 3, 4, 5, 6, 9 or 12 units)")


def half_point(meter: str) -> float:
    """Quarters from the downbeat to the middle of the bar, on a beat: 4/4 → 2, 6/8 → 1.5, 3/4 → 2.

    Odd beat counts split after the larger part (3/4 → 2 + 1, 5/4 → 3 + 2); a one-beat bar
    splits at half a beat.
    """
    beat, beats = beat_structure(meter)
    if beats == 1:
        return beat / 2
    return beat * ((beats + 1) // 2)
