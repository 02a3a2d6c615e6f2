"""MusicXML through music21: title, clef, meter, key, tempo, bars of spelt notes with ties and chord symbols.

What is *displayed* — spellings, accidentals, ties — comes from :mod:`tunesmith.export.notation`
and is set explicitly on every note, so music21 writes exactly that (opens in MuseScore).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.export.notation import bar_lines, pieces, written_key
from tunesmith.song import Song, bar_steps, one_line


def chord_figure(symbol: str) -> str:
    """music21's spelling of a chord symbol: a flat root is written with '-' ("Bbmaj7" → "B-maj7")."""
    return symbol[0] + "-" + symbol[2:] if len(symbol) > 1 and symbol[1] == "b" else symbol


def to_score(song: Song, bpm: float | None = None):
    """A music21 Score of the song: one part, bars of spelt notes, chord symbols above the staff."""
    try:
        from music21 import clef, harmony, key, metadata, meter, note, pitch, stream, tempo, tie
    except ImportError:
        raise TunesmithError("writing MusicXML needs music21: pip install music21") from None
    spq = song.steps_per_quarter
    score = stream.Score()
    score.metadata = metadata.Metadata(title=one_line(song.title) or "Melody", composer="tunesmith")
    part = stream.Part(id="melody")
    part.partName = "Melody"
    lines = bar_lines(song)
    chords = {c.start: c for c in getattr(song, "chords", []) or []}
    full_bar = bar_steps(song.meter, spq)
    first_number = 0 if lines[0] == 0 and song.bar_starts and song.bar_starts[0] > 0 else 1  # a pickup is bar 0
    for number, (left, right, bar) in enumerate(zip(lines, lines[1:], pieces(song), strict=False)):
        measure = stream.Measure(number=number + first_number)
        if number == 0:
            measure.insert(0, clef.BassClef() if lies_low(song) else clef.TrebleClef())
            measure.insert(0, meter.TimeSignature(song.meter))
            measure.insert(0, key.Key(*written_key(song)))
            if bpm:
                measure.insert(0, tempo.MetronomeMark(number=bpm, referent=1.0))
            if right - left < full_bar:
                measure.paddingLeft = Fraction(full_bar - (right - left), spq)
        elif right == lines[-1] and right - left < full_bar:  # the last bar the pickup completes
            measure.paddingRight = Fraction(full_bar - (right - left), spq)
        for piece in bar:
            if piece.start in chords:
                measure.insert(Fraction(piece.start - left, spq), _chord_symbol(harmony, chords[piece.start].symbol))
            if piece.spelling is None:
                element = note.Rest()
            else:
                spelling = piece.spelling
                element = note.Note(pitch.Pitch(step=spelling.letter, octave=spelling.octave))
                if spelling.alter or piece.show_accidental:
                    element.pitch.accidental = pitch.Accidental(spelling.alter)
                    element.pitch.accidental.displayStatus = piece.show_accidental
                if piece.tie_start or piece.tie_stop:
                    kind = "continue" if piece.tie_start and piece.tie_stop else "start" if piece.tie_start else "stop"
                    element.tie = tie.Tie(kind)
            element.quarterLength = Fraction(piece.steps, spq)
            measure.insert(Fraction(piece.start - left, spq), element)
        part.append(measure)
    score.insert(0, part)
    return score


def lies_low(song: Song) -> bool:
    """Whether most of the melody's notes lie below middle C (C4): a bass clef suits it, else a treble."""
    pitches = [n.pitch for n in song.notes if n.pitch is not None]
    return sum(p < 60 for p in pitches) * 2 > len(pitches)


def _chord_symbol(harmony, symbol: str):
    try:
        return harmony.ChordSymbol(chord_figure(symbol))
    except Exception:  # music21 raises several types for a figure it cannot read
        raise TunesmithError(f"cannot write the chord symbol {symbol!r}") from None


def musicxml_bytes(song: Song, bpm: float | None = None) -> bytes:
    """The song as MusicXML text (UTF-8 bytes)."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(to_score(song, bpm)).parse()


def write_musicxml(song: Song, path: str | Path, config) -> Path:
    """Write ``song`` as a MusicXML file at ``path`` (tempo from ``config.bpm``)."""
    path = Path(path)
    path.write_bytes(musicxml_bytes(song, config.bpm))
    return path


__all__ = ["bar_lines", "chord_figure", "musicxml_bytes", "to_score", "write_musicxml"]
