"""What a score shows, shared by the MusicXML/SVG and ABC writers.

* **Spelling** (:func:`spell`): every MIDI pitch gets a letter and an alteration chosen from the
  key — diatonic notes by the scale's letters, the raised 6th/7th of minor as a sharp/natural of
  the scale letter (D♯ in E minor, D♮ in E♭ minor), other chromatic notes by melodic direction
  (raised on the way up, lowered on the way down) and otherwise by the key's side (sharps in
  sharp keys, flats in flat keys); the flat 7th of major (mixolydian) and the raised 4th are fixed.
* **Pieces** (:func:`pieces`): the song cut at bar lines, chord changes, and beats (a note that
  starts off a beat and crosses one is tied at the beat), each piece a single written value.
* **Accidentals** (:func:`mark_accidentals`): shown only where the key signature and earlier
  notes of the same bar do not already say it; a tied-over note never repeats its accidental.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from tunesmith.meter import bar_lines, beat_steps
from tunesmith.song import PITCH_CLASSES, Song, bar_steps, key_name, tonic_pitch_class

LETTERS = "CDEFGAB"
NATURAL_PCS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)
SHARP_ORDER = "FCGDAEB"


@dataclass(frozen=True)
class Spelling:
    """A written pitch: ``letter`` C..B, ``alter`` in semitones (−2..2), ``octave`` (C4 = middle C)."""

    letter: str
    alter: int
    octave: int

    @property
    def name(self) -> str:
        """music21 name with octave ("F#4", "E-5")."""
        return self.letter + ("#" * self.alter if self.alter > 0 else "-" * -self.alter) + str(self.octave)


@dataclass(frozen=True)
class Piece:
    """One written note or rest: ``start``/``steps`` on the grid, tied to the next/previous piece."""

    start: int
    steps: int
    pitch: int | None
    tie_start: bool = False
    tie_stop: bool = False
    spelling: Spelling | None = None
    show_accidental: bool = False


def _alter(pc: int, letter: str) -> int:
    """Alteration (−6..5) that makes ``letter`` sound as pitch class ``pc``."""
    return (pc - NATURAL_PCS[letter] + 6) % 12 - 6


def written_key(song: Song) -> tuple[str, str]:
    """(tonic as music21 spells it, mode) for the key signature: the song's own spelling when it
    is a real key signature (G♭ major stays G♭), else the conventional one (A♯ major → B♭)."""
    name = song.key.strip()
    name = name[:1].upper() + name[1:].replace("b", "-")
    if name in PITCH_CLASSES and abs(key_sharps(name, song.mode)) <= 7:
        return name, song.mode
    return key_name(tonic_pitch_class(song.key), song.mode), song.mode


def scale_letters(tonic: str, mode: str) -> list[tuple[str, int]]:
    """(letter, alteration) of the seven degrees of ``tonic`` ``mode`` ("F#" major → F♯ G♯ … E♯)."""
    steps = MAJOR_STEPS if mode == "major" else MINOR_STEPS
    start, tonic_pc = LETTERS.index(tonic[0]), PITCH_CLASSES[tonic]
    letters = [LETTERS[(start + i) % 7] for i in range(7)]
    return [(letter, _alter((tonic_pc + step) % 12, letter)) for letter, step in zip(letters, steps, strict=True)]


def key_sharps(tonic: str, mode: str) -> int:
    """Sharps (positive) or flats (negative) in the key signature of ``tonic`` ``mode``."""
    degrees = scale_letters(tonic, mode)
    return sum(alter for _, alter in degrees)


def key_alters(tonic: str, mode: str) -> dict[str, int]:
    """Alteration the key signature gives each letter (D major → F: 1, C: 1, others 0)."""
    return dict(scale_letters(tonic, mode))


def spell(pitch: int, tonic: str, mode: str, direction: int = 0) -> Spelling:
    """The written spelling of MIDI ``pitch`` in the key; ``direction`` is the melodic motion to the
    next note (+1 up, −1 down, 0 none), used only for chromatic notes."""
    degrees = scale_letters(tonic, mode)
    tonic_pc = PITCH_CLASSES[tonic]
    rel = (pitch - tonic_pc) % 12
    steps = MAJOR_STEPS if mode == "major" else MINOR_STEPS
    if rel in steps:
        degree, shift = steps.index(rel), 0
    elif mode == "minor" and rel in (9, 11):
        degree, shift = (5 if rel == 9 else 6), 1  # melodic minor's raised 6th and 7th
    elif mode == "minor":
        degree, shift = {1: (1, -1), 4: (2, 1), 6: (3, 1)}[rel]  # ♭2, Picardy 3rd, ♯4
    elif rel == 10:
        degree, shift = 6, -1  # mixolydian 7th: C♮ in D major
    elif rel == 6:
        degree, shift = 3, 1  # raised 4th, leading note to the dominant
    else:  # ♯1/♭2, ♯2/♭3, ♯5/♭6: by direction, else by the key's side
        up = direction > 0 or (direction == 0 and key_sharps(tonic, mode) >= 0)
        below = steps.index(rel - 1)
        degree, shift = (below, 1) if up else (below + 1, -1)
        letter, alter = degrees[degree]
        if abs(alter + shift) > 1:  # a double accidental for a passing note: take the other letter
            degree, shift = (below + 1, -1) if up else (below, 1)
    letter, alter = degrees[degree]
    alter += shift
    natural = pitch - alter
    return Spelling(letter, alter, natural // 12 - 1)


def _power_of_two(value: Fraction) -> bool:
    return value.numerator & (value.numerator - 1) == 0 and value.denominator & (value.denominator - 1) == 0 and (
        value.numerator == 1 or value.denominator == 1)


def writable(steps: int, steps_per_quarter: int) -> bool:
    """True when ``steps`` is one written value up to a dotted whole: plain, dotted, double-dotted,
    or such a value inside a triplet."""
    quarters = Fraction(steps, steps_per_quarter)
    return any(_power_of_two(value / dots) and value / dots <= 4
               for value in (quarters, quarters * Fraction(3, 2)) for dots in (1, Fraction(3, 2), Fraction(7, 4)))


def _cuts(song: Song, lines: list[int]) -> tuple[set[int], list[int], set[int]]:
    """Steps where every note is cut (bar lines, chord changes), where off-beat notes are cut
    (beats), and the middles of four-beat bars, which only a note from the downbeat may cross."""
    beat = beat_steps(song.meter, song.steps_per_quarter)
    bar = bar_steps(song.meter, song.steps_per_quarter)
    hard = set(lines) | {c.start for c in getattr(song, "chords", []) or []}
    beats = sorted({left + k for left, right in zip(lines, lines[1:], strict=False)
                    for k in range(right - left - beat, 0, -beat)} | set(lines))  # fmt: skip
    middles = {left + 2 * beat for left, right in zip(lines, lines[1:], strict=False) if right - left == bar == 4 * beat}
    return hard, beats, middles


def pieces(song: Song) -> list[list[Piece]]:
    """The written notes and rests of ``song`` bar by bar, spelt and with accidentals marked.

    A rest pads the last bar; the pickup (if any) is the first, short bar.
    """
    tonic, mode = written_key(song)
    spq = song.steps_per_quarter
    lines = bar_lines(song)
    hard, beats, middles = _cuts(song, lines)
    beat = beat_steps(song.meter, spq)
    spans, start = [], 0
    for note in song.notes:
        spans.append((start, start + note.steps, note.pitch))
        start += note.steps
    if start < lines[-1]:
        spans.append((start, lines[-1], None))
    pitched = [p for _, _, p in spans if p is not None]
    out: list[Piece] = []
    index = 0
    for a, b, pitch in spans:
        if pitch is not None:
            following = pitched[index + 1] if index + 1 < len(pitched) else pitch
            spelling = spell(pitch, tonic, mode, (following > pitch) - (following < pitch))
            index += 1
        position = a
        while position < b:
            end = min([b] + [c for c in hard if position < c < b])
            if position not in beats:  # an off-beat start is cut at the next beat it crosses
                end = min([end] + [c for c in beats if position < c < end])
            for middle in middles:  # 4/4: only the downbeat or a syncopated half note crosses beat 3
                if position < middle < end and position not in lines and not (end - position == 2 * beat and
                                                                               position + beat == middle):
                    end = middle
            if not writable(end - position, spq):  # split into written values, at a beat if one fits
                ends = [c for c in reversed(beats) if position < c < end] + list(range(end - 1, position, -1))
                end = next((c for c in ends if writable(c - position, spq)), end)
            out.append(Piece(position, end - position, pitch, pitch is not None and end < b,
                             pitch is not None and position > a, spelling if pitch is not None else None))  # fmt: skip
            position = end
    bars = [[p for p in out if left <= p.start < right] for left, right in zip(lines, lines[1:], strict=False)]
    return [mark_accidentals(bar, key_alters(tonic, mode)) for bar in bars]


def mark_accidentals(bar: list[Piece], signature: dict[str, int]) -> list[Piece]:
    """Set ``show_accidental`` on the pieces of one bar.

    An accidental shows when the note's alteration differs from what the key signature or an
    earlier note of the same letter and octave in this bar established; a note after a chromatic
    note of the same letter in another octave of this bar, or after one tied over the bar line,
    gets a courtesy accidental. Tied-over notes show none themselves.
    """
    current: dict[tuple[str, int], int] = {}
    altered_letters: set[str] = set()
    marked = []
    for piece in bar:
        spelling = piece.spelling
        if spelling is None or piece.tie_stop:
            if spelling is not None and spelling.alter != signature[spelling.letter]:
                altered_letters.add(spelling.letter)  # a tied-in chromatic note earns a courtesy later
            marked.append(piece)
            continue
        where = (spelling.letter, spelling.octave)
        expected = current.get(where, signature[spelling.letter])
        courtesy = where not in current and spelling.letter in altered_letters
        show = spelling.alter != expected or courtesy
        current[where] = spelling.alter
        if spelling.alter != signature[spelling.letter]:
            altered_letters.add(spelling.letter)
        marked.append(replace(piece, show_accidental=show))
    return marked


def phrase_starts(song: Song, bars_per_phrase: int = 4) -> list[int]:
    """Steps at which phrases begin: the Song's own phrases (``Song.phrase_starts``, see
    ``tunesmith.form``) when it has them, else every ``bars_per_phrase`` bars.

    The one adapter between phrase data on a Song and the writers that lay out or shape phrases.
    """
    starts = [s for s in song.phrase_starts if 0 <= s < max(song.total_steps, 1)]
    if starts:
        return sorted(set(starts) | {0})
    lines = bar_lines(song)[:-1]
    pickup = 1 if song.bar_starts and song.bar_starts[0] > 0 else 0
    return [0] + [line for i, line in enumerate(lines[pickup:]) if i and i % bars_per_phrase == 0]
