"""The instruments a tune can be written for: General MIDI program, playable range, usual tempo.

One table, used by export (program, range check, octave of the tin whistle) and by generation
(:func:`playable_range` as a range constraint, ``bpm`` as the default tempo).
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.errors import TunesmithError

_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


@dataclass(frozen=True)
class Instrument:
    """``program`` is the General MIDI number (1..128); ``low``/``high`` the written playable range
    as MIDI numbers; ``bpm`` a usual tempo in quarter notes per minute; ``octave_up`` is true for
    an instrument that sounds an octave above its written notes (the tin whistle)."""

    name: str
    program: int
    low: int
    high: int
    bpm: float
    octave_up: bool = False


INSTRUMENTS = {
    # Violin in first to third position: open G string to E6.
    "fiddle": Instrument("fiddle", 41, 55, 88, 112.0),
    # D tin whistle, written D4–D6 (two octaves), sounding an octave higher (GM 79 "Whistle").
    "whistle": Instrument("whistle", 79, 62, 86, 104.0, octave_up=True),
    # Concert/wooden flute: C4 (D4 on a simple-system flute) to the easy top of the third octave.
    "flute": Instrument("flute", 74, 60, 93, 96.0),
    # Piano accordion's right hand, F3 to A6.
    "accordion": Instrument("accordion", 22, 53, 93, 108.0),
    # An untrained singer: about an octave and a half, A3 to E5 ("Voice Oohs").
    "voice": Instrument("voice", 54, 57, 76, 84.0),
    # The full keyboard.
    "piano": Instrument("piano", 1, 21, 108, 100.0),
}


def note_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI number (74 → "D5")."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


def instrument(name: str) -> Instrument:
    """The instrument called ``name``; an unknown name is a TunesmithError listing the known ones."""
    if name not in INSTRUMENTS:
        raise TunesmithError(f"unknown instrument {name!r}; known: {', '.join(INSTRUMENTS)}")
    return INSTRUMENTS[name]


def playable_range(name: str) -> tuple[int, int]:
    """(lowest, highest) written MIDI pitch ``name`` can play, both inclusive — a range constraint."""
    found = instrument(name)
    return found.low, found.high


def check_range(pitches: list[int], name: str) -> None:
    """Raise a one-line TunesmithError when a pitch lies outside what ``name`` can play."""
    found = instrument(name)
    if not pitches:
        return
    if max(pitches) > found.high:
        raise TunesmithError(f"melody reaches {note_name(max(pitches))}, too high for the {name} "
                             f"(plays {note_name(found.low)}–{note_name(found.high)})")  # fmt: skip
    if min(pitches) < found.low:
        raise TunesmithError(f"melody reaches {note_name(min(pitches))}, too low for the {name} "
                             f"(plays {note_name(found.low)}–{note_name(found.high)})")  # fmt: skip


__all__ = ["INSTRUMENTS", "Instrument", "check_range", "instrument", "note_name", "playable_range"]
