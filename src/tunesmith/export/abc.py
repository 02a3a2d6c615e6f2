"""ABC notation, the way folk musicians share tunes: headers, spelt notes, bars, chords in quotes.

The written notes — spelling, accidentals, ties, cuts at beats — are those of the engraved score
(:mod:`tunesmith.export.notation`). ABC's accidentals last to the bar line, as the staff's do, but
not every reader carries them (music21 does not): so every note that departs from the key
signature is written with its accidental, and so is one that returns to it within the bar, and
both kinds of reader read the same notes.
Notes of one beat are beamed (written together), beats are separated by a space, and each line
holds one phrase (every 4 bars when the Song carries no phrases).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from tunesmith.export.notation import Piece, bar_lines, beat_steps, key_alters, phrase_starts, pieces, written_key
from tunesmith.song import Song, bar_steps, one_line

ACCIDENTALS = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}
UNIT = Fraction(1, 2)  # L:1/8 — one eighth note, in quarters


def abc_key(song: Song) -> str:
    """The K: field with its mode: "Dmaj", "Emin", "Ebmin", "F#maj"."""
    tonic, mode = written_key(song)
    return tonic.replace("-", "b") + ("maj" if mode == "major" else "min")


def abc_pitch(piece: Piece, signature: dict[str, int]) -> str:
    """A note's pitch in ABC: its accidental where the staff shows one or the key ``signature``
    gives the letter another, then the letter and octave marks (C = middle C, c = C5)."""
    spelling = piece.spelling
    explicit = piece.show_accidental or spelling.alter != signature.get(spelling.letter, 0)
    text = ACCIDENTALS[spelling.alter] if explicit else ""
    if spelling.octave >= 5:
        return text + spelling.letter.lower() + "'" * (spelling.octave - 5)
    return text + spelling.letter + "," * (4 - spelling.octave)


def abc_length(quarters: Fraction) -> str:
    """A length in quarters written against L:1/8 ("" for an eighth, "2", "3/2", "/2")."""
    units = quarters / UNIT
    if units == 1:
        return ""
    if units.denominator == 1:
        return str(units.numerator)
    return ("" if units.numerator == 1 else str(units.numerator)) + f"/{units.denominator}"


def _is_triplet(piece: Piece, spq: int) -> bool:
    return Fraction(piece.steps, spq).denominator % 3 == 0


def bar_text(bar: list[Piece], song: Song, left: int, shift: int, chords: dict[int, str],
             signature: dict[str, int]) -> str:  # fmt: skip
    """One bar in ABC: chord symbols, notes and rests; a space between beats; triplets as (3 or (3:2:n."""
    spq, beat = song.steps_per_quarter, beat_steps(song.meter, song.steps_per_quarter)
    out, index = [], 0
    while index < len(bar):
        piece = bar[index]
        if index and (piece.start - left + shift) % beat == 0:
            out.append(" ")
        if _is_triplet(piece, spq):
            run = [piece]
            while index + len(run) < len(bar) and _is_triplet(bar[index + len(run)], spq):
                run.append(bar[index + len(run)])
            out.append("(3" if len(run) == 3 else f"(3:2:{len(run)}")
            out.extend(_note(p, spq, chords, signature, Fraction(3, 2)) for p in run)
            index += len(run)
            continue
        out.append(_note(piece, spq, chords, signature))
        index += 1
    return "".join(out)


def _note(piece: Piece, spq: int, chords: dict[int, str], signature: dict[str, int],
          scale: Fraction = Fraction(1)) -> str:  # fmt: skip
    chord = f'"{chords[piece.start]}"' if piece.start in chords else ""
    length = abc_length(Fraction(piece.steps, spq) * scale)
    if piece.spelling is None:
        return f"{chord}z{length}"
    return f"{chord}{abc_pitch(piece, signature)}{length}{'-' if piece.tie_start else ''}"


def line_breaks(song: Song, lines: list[int]) -> set[int]:
    """Bar lines that end an ABC line: the first bar line at or after each phrase start."""
    breaks = set()
    for start in phrase_starts(song)[1:]:
        after = [line for line in lines if line >= start]
        if after:
            breaks.add(after[0])
    return breaks


def abc_text(song: Song, bpm: float | None = None, number: int = 1) -> str:
    """The song as one ABC tune (``X:`` ``number``)."""
    lines = bar_lines(song)
    bar = bar_steps(song.meter, song.steps_per_quarter)
    chords = {c.start: c.symbol for c in getattr(song, "chords", []) or []}
    header = [f"X:{number}", f"T:{one_line(song.title) or 'Melody'}", "C:tunesmith", f"M:{song.meter}", "L:1/8"]
    if bpm:
        header.append(f"Q:1/4={round(bpm)}")
    header.append(f"K:{abc_key(song)}")
    breaks = line_breaks(song, lines)
    signature = key_alters(*written_key(song))
    body, current = [], ""
    for i, (left, right, notes) in enumerate(zip(lines, lines[1:], pieces(song), strict=False)):
        shift = bar - (right - left) if i == 0 and right - left < bar else 0  # a pickup counts from the bar's end
        current += bar_text(notes, song, left, shift, chords, signature) + (" |]" if i == len(lines) - 2 else " | ")
        if right in breaks or i == len(lines) - 2:
            body.append(current.strip())
            current = ""
    return "\n".join(header + body) + "\n"


def write_abc(song: Song, path: str | Path, config) -> Path:
    """Write ``song`` as an ABC file at ``path`` (tempo from ``config.bpm``)."""
    path = Path(path)
    path.write_text(abc_text(song, config.bpm), encoding="utf-8")
    return path
