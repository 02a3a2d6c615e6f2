"""MusicXML through music21: title, composer, meter, key, tempo, bars with ties (opens in MuseScore)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.meter import bar_lines
from tunesmith.song import Song, bar_steps, tonic_pitch_class


def to_score(song: Song, bpm: float | None = None):
    """A music21 Score of the song: one part, bars split at the bar lines with tied notes."""
    try:
        from music21 import key, metadata, meter, note, stream, tempo, tie
    except ImportError:
        raise TunesmithError("writing MusicXML needs music21: pip install music21") from None
    spq = song.steps_per_quarter
    score = stream.Score()
    score.metadata = metadata.Metadata(title=song.title or "Melody", composer="tunesmith")
    part = stream.Part(id="melody")
    part.partName = "Melody"
    lines = bar_lines(song)
    spans, start = [], 0  # (start, end, pitch) of each note on the grid
    for item in song.notes:
        spans.append((start, start + item.steps, item.pitch))
        start += item.steps
    if start < lines[-1]:
        spans.append((start, lines[-1], None))  # a rest fills the last bar
    full_bar = bar_steps(song.meter, spq)
    first_number = 0 if lines[0] == 0 and song.bar_starts and song.bar_starts[0] > 0 else 1  # a pickup is bar 0
    for number, (left, right) in enumerate(zip(lines, lines[1:], strict=False)):
        measure = stream.Measure(number=number + first_number)
        if number == 0:
            measure.insert(0, meter.TimeSignature(song.meter))
            measure.insert(0, key.Key(_tonic(song), song.mode))
            if bpm:
                measure.insert(0, tempo.MetronomeMark(number=bpm, referent=1.0))
            if right - left < full_bar:
                measure.paddingLeft = Fraction(full_bar - (right - left), spq)
        for a, b, pitch in spans:
            lo, hi = max(a, left), min(b, right)
            if lo >= hi:
                continue
            element = note.Rest() if pitch is None else note.Note(pitch)
            element.quarterLength = Fraction(hi - lo, spq)
            if pitch is not None and (a < lo or b > hi):
                element.tie = tie.Tie("continue" if a < lo and b > hi else "stop" if a < lo else "start")
            measure.append(element)
        part.append(measure)
    score.insert(0, part)
    return score


def _tonic(song: Song) -> str:
    from tunesmith.song import key_name

    return key_name(tonic_pitch_class(song.key), song.mode)


def musicxml_bytes(song: Song, bpm: float | None = None) -> bytes:
    """The song as MusicXML text (UTF-8 bytes)."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(to_score(song, bpm)).parse()


def write_musicxml(song: Song, path: str | Path, config) -> Path:
    """Write ``song`` as a MusicXML file at ``path`` (tempo from ``config.bpm``)."""
    path = Path(path)
    path.write_bytes(musicxml_bytes(song, config.bpm))
    return path
