"""The music data every stage shares: a monophonic ``Song`` on a time-step grid."""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from typing import Any

MODES = ("major", "minor")
# Semitones above C of each pitch-class name (sharps and flats, music21 spelling with '-').
PITCH_CLASSES = {
    "C": 0, "B#": 0, "C#": 1, "D-": 1, "D": 2, "D#": 3, "E-": 3, "E": 4, "F-": 4, "E#": 5, "F": 5,
    "F#": 6, "G-": 6, "G": 7, "G#": 8, "A-": 8, "A": 9, "A#": 10, "B-": 10, "B": 11, "C-": 11,
}  # fmt: skip
# Spellings used when writing keys: the usual key-signature choice for each tonic and mode.
MAJOR_TONICS = ["C", "D-", "D", "E-", "E", "F", "F#", "G", "A-", "A", "B-", "B"]
MINOR_TONICS = ["C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B"]
# Plain pitch-class names for labels (piano rolls, histograms): sharps for black keys but Eb, Ab, Bb.
PITCH_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
# Scale degrees (semitones above the tonic).
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# The pitches a melody in each mode may use: minor is natural minor plus the raised 7th (the
# leading tone folk minor tunes use at cadences), so a constrained minor melody can close on the tonic.
SCALES = {"major": MAJOR_SCALE, "minor": NATURAL_MINOR_SCALE + (11,)}
# The degrees a folk melody ends on (semitones above the tonic): the training songs of essen/erk
# end on 1 or 3 in major (79.4% and 17.7% of 1,480; 5 in 2.1%) and on 1 in minor (96.6% of 119).
FINAL_DEGREES = {"major": (0, 4), "minor": (0,)}
_NOTE = re.compile(r"^\s*([A-Ga-g])([#b-]*)(-?\d+)\s*$")


@dataclass(frozen=True)
class Note:
    """One note or rest: ``pitch`` is a MIDI number (None = rest), ``steps`` its length in time steps."""

    pitch: int | None
    steps: int


@dataclass(frozen=True)
class Chord:
    """A chord symbol over the melody from step ``start`` for ``steps`` steps.

    ``root`` is the pitch class (0–11) of the sounding root in the Song's key as sounding;
    ``quality`` one of "maj", "min", "7", "dim", "maj7", "min7"; ``roman`` its function in the
    key ("V7", "iv"); ``symbol`` the chord symbol spelt for the key ("F#m", "Bbmaj7").
    """

    start: int
    steps: int
    root: int
    quality: str
    roman: str
    symbol: str


@dataclass
class Song:
    """A melody on the step grid plus what we know about it.

    ``bar_starts`` are the steps at which bars begin (a pickup makes the first one > 0);
    ``key`` and ``mode`` are the original key, ``transposition`` the semitones applied to bring
    it to C major / A minor (0 for generated melodies in C/A). ``phrase_starts`` are the steps
    where phrases begin and ``phrase_source`` how they were found (see ``tunesmith.form``);
    empty when unknown.
    """

    notes: list[Note]
    steps_per_quarter: int = 4
    meter: str = "4/4"
    bar_starts: list[int] = field(default_factory=list)
    mode: str = "major"
    key: str = "C"
    transposition: int = 0
    title: str = ""
    source: str = ""
    phrase_starts: list[int] = field(default_factory=list)
    phrase_source: str = ""
    chords: list[Chord] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return sum(n.steps for n in self.notes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (notes as ``[pitch, steps]`` pairs); built field by field, since
        ``dataclasses.asdict`` deep-copies every note only for it to be replaced (the studio
        answers each request with these)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["notes"] = [[n.pitch, n.steps] for n in self.notes]
        data["bar_starts"], data["phrase_starts"] = list(self.bar_starts), list(self.phrase_starts)
        data["chords"] = [asdict(c) for c in self.chords]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Song:
        data = dict(data)
        data["notes"] = [Note(p, s) for p, s in data["notes"]]
        data["chords"] = [Chord(**c) for c in data.get("chords", [])]
        return cls(**data)


def one_line(text: str) -> str:
    """``text`` as every file header can hold it: line breaks and other control characters
    become spaces (an ABC ``T:`` line, a MIDI track name, XML), runs of spaces one, ends trimmed."""
    return " ".join("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in str(text)).split())


def grid_lengths(steps_per_quarter: int, longest: int, zero: bool = False) -> list[float]:
    """Every note length in quarters on the step grid up to ``longest`` quarters (0 too with
    ``zero``): what a file read for its notes alone may hold, whatever lengths a corpus keeps to."""
    return [k / steps_per_quarter for k in range(0 if zero else 1, longest * steps_per_quarter + 1)]


NOTE_VALUES = (1, 2, 4, 8, 16, 32, 64)  # a meter's lower number names one of these notes (4: a quarter)


def meter_parts(meter: str) -> tuple[int, int]:
    """``(count, note value)`` of a meter such as "6/8"; ValueError for a meter no score or MIDI
    file can write: not "N/D", a count below 1, or a lower number that names no note value (3/6)."""
    num, _, den = str(meter).partition("/")
    if not (num.strip().isdigit() and den.strip().isdigit()):
        raise ValueError(f"meter {meter!r} is not written like 3/4 or 6/8")
    count, value = int(num), int(den)
    if count < 1 or value not in NOTE_VALUES:
        raise ValueError(f"meter {meter!r}: the upper number must be 1 or more and the lower one a note value "
                         f"({', '.join(map(str, NOTE_VALUES))})")  # fmt: skip
    return count, value


@functools.lru_cache(maxsize=256)  # a pure function asked for the same few meters again and again
def bar_steps(meter: str, steps_per_quarter: int) -> int:
    """Steps in one full bar of ``meter`` ("6/8" at 4 steps per quarter → 12); ValueError for a
    meter :func:`meter_parts` refuses or one whose bar is no whole number of steps."""
    num, den = meter_parts(meter)
    length = Fraction(num * 4, den) * steps_per_quarter
    if length.denominator != 1 or length <= 0:
        raise ValueError(f"meter {meter!r} does not fill a whole number of steps")
    return int(length)


def regular_bar_starts(total_steps: int, bar_length: int, pickup_steps: int = 0) -> list[int]:
    """Bar starts of a melody in one meter: a pickup of ``pickup_steps`` then full bars."""
    first = pickup_steps % bar_length if pickup_steps else 0
    starts = list(range(first, max(total_steps, 1), bar_length))
    return ([0] if first else []) + starts


def step_positions(bar_starts: list[int], total_steps: int, bar_length: int) -> list[int]:
    """Step-within-bar of steps ``0..total_steps`` (one past the end too, for predicting the end).

    Before the first bar start (a pickup) positions count back from the next bar line, so a
    one-beat 4/4 pickup at 4 steps per quarter gets positions 12..15. After the last bar start,
    positions keep counting and wrap at ``bar_length``.
    """
    starts = sorted(set(bar_starts)) or [0]
    positions = []
    index = 0
    for step in range(total_steps + 1):
        while index + 1 < len(starts) and starts[index + 1] <= step:
            index += 1
        if step < starts[0]:
            positions.append((bar_length - (starts[0] - step)) % bar_length)
        else:
            positions.append(step - starts[index] if index + 1 < len(starts) else (step - starts[index]) % bar_length)
    return positions


def tonic_pitch_class(tonic: str) -> int:
    """Pitch class (0–11) of a tonic name such as "F#", "Bb", "e-"; raises ValueError if unknown."""
    name = tonic.strip()
    name = name[:1].upper() + name[1:].replace("b", "-")
    if name not in PITCH_CLASSES:
        raise ValueError(f"unknown key {tonic!r}")
    return PITCH_CLASSES[name]


def note_number(name: str) -> int:
    """MIDI number of a note name ("C4" = 60, "Bb3" = 58, "F#5" = 78) or of a plain number ("67").

    Raises ValueError with a one-line message for anything else or a number outside 0..127.
    """
    text = name.strip()
    if text.isdigit():
        number = int(text)
    else:
        match = _NOTE.match(text)
        if not match:
            raise ValueError(f"cannot read note {name!r}: write it like C4, F#5, Bb3 or a MIDI number")
        letter, accidentals, octave = match.groups()
        pc = PITCH_CLASSES[letter.upper()] + accidentals.count("#") - accidentals.count("b") - accidentals.count("-")
        number = 12 * (int(octave) + 1) + pc
    if not 0 <= number <= 127:
        raise ValueError(f"note {name!r} is outside MIDI 0..127")
    return number


def pitch_name(pitch: int) -> str:
    """A MIDI number as a note name with octave (60 → "C4", 70 → "Bb4")."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def transposition_to(tonic_pc: int, mode: str, target_pc: int | None = None) -> int:
    """Semitones (−6..+5) that move a key's tonic to C (major) / A (minor), or to ``target_pc``.

    Choosing the smallest shift keeps the melody nearest its original register.
    """
    if target_pc is None:
        target_pc = 0 if mode == "major" else 9
    return (target_pc - tonic_pc + 6) % 12 - 6


def key_name(tonic_pc: int, mode: str) -> str:
    """Conventional spelling of a key's tonic ("B-" for Bb major, "C#" for C# minor)."""
    return (MAJOR_TONICS if mode == "major" else MINOR_TONICS)[tonic_pc % 12]
