"""Train/validation split grouped by normalised tune title.

Essen holds up to six variants of one tune under one title; all variants of a title land on
the same side, so validation measures melodies the model has never seen in any variant.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe"})
# Variant markers that differ between versions of one tune: "(Var. 2)", "Variante B", "- 2. Fassung".
_VARIANT = re.compile(r"\((?:var|variante|version|fassung)[^)]*\)|\b(?:var|variante|version|fassung)\b\.?\s*\w*$")


def normalise_title(title: str) -> str:
    """Lower case, umlauts spelled out, accents and punctuation dropped, variant markers removed.

    >>> normalise_title("Es freit ein wilder Wassermann (Var. 2)")
    'es freit ein wilder wassermann'
    """
    text = title.lower().translate(_FOLD)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = _VARIANT.sub(" ", text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"(\s\d+)+$", "", text.strip())  # trailing variant numbers
    return re.sub(r"\s+", " ", text).strip()


# Damage in a few Essen titles, as music21 reads them: "erk" became "F[ERK" + a digit
# ("MF[ERK2 AUF O CHRIST" is "MERK AUF O CHRIST"), a line break "CNR[".
_ESSEN_DAMAGE = ((re.compile(r"F\[ERK\d"), "ERK"), (re.compile(r"\s*CNR\[\s*"), " "))


def readable_title(title: str) -> str:
    """A title as a musician should read it: the Essen edition's damaged spots repaired. For
    display only — the split groups songs by :func:`normalise_title` of the title as read.

    >>> readable_title("MARSCHIEREN WIR IN DAS TUF[ERK1ISCHE LAND")
    'MARSCHIEREN WIR IN DAS TUERKISCHE LAND'
    """
    for pattern, repair in _ESSEN_DAMAGE:
        title = pattern.sub(repair, title)
    return title


def is_validation(group: str, fraction: float, seed: int = 0) -> bool:
    """Whether a title group is held out: a stable hash of (seed, group) below ``fraction``.

    The decision depends on the group alone, so adding songs never moves existing ones.
    """
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def assign_splits(groups: list[str], fraction: float, seed: int = 0) -> list[str]:
    """"train" or "val" for each song's group."""
    return ["val" if is_validation(g, fraction, seed) else "train" for g in groups]


LEAK_INTERVALS = 10  # a shared run of 10 intervals (11 notes) marks one melody as a possible version of another (8 caught 1,277 of 3,436 songs, mostly shared scale runs)


def interval_grams(pitches: list[int | None], n: int = LEAK_INTERVALS) -> set[tuple[int, ...]]:
    """Every run of ``n`` consecutive intervals between a melody's sounding notes (rests skipped).

    Intervals, not pitches: an octave or key apart is the same tune.

    >>> sorted(interval_grams([60, 62, None, 64, 62], 2))
    [(2, -2), (2, 2)]
    """
    notes = [p for p in pitches if p is not None]
    steps = tuple(b - a for a, b in zip(notes, notes[1:]))
    return {steps[i : i + n] for i in range(len(steps) - n + 1)}


def shares_melody(pitches: list[int | None], held_out: set[tuple[int, ...]], n: int = LEAK_INTERVALS) -> bool:
    """Whether a melody shares any ``n``-interval run with ``held_out`` (grams of validation songs):
    then it may be a version of a held-out tune filed under another title, and a training-only
    source leaves it out."""
    return not held_out.isdisjoint(interval_grams(pitches, n))
