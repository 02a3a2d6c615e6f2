"""Chords for a Song: its bars cut into spans, decoded by the harmoniser, written as ``Chord``s."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.harmony.model import HarmonyModel
from tunesmith.harmony.spans import PERS, Passage, cut_spans
from tunesmith.harmony.theory import beat_structure, roman, spell_root, symbol
from tunesmith.meter import full_bar_starts
from tunesmith.song import Chord, Song, bar_steps, grid_lengths, tonic_pitch_class


def song_passage(song: Song, per: str) -> Passage:
    """The Song as a passage: notes relative to its tonic, spans from its bar lines (in quarters).

    The notes must sound in ``song.key`` (as generated melodies and :func:`read_melody` give).
    Raises TunesmithError for a meter or key the harmoniser cannot use.
    """
    try:
        beat_structure(song.meter)
        bar = bar_steps(song.meter, song.steps_per_quarter)
    except (ValueError, ZeroDivisionError) as exc:
        raise TunesmithError(f"cannot harmonise a melody in {song.meter!r}: {exc}") from None
    try:
        tonic = tonic_pitch_class(song.key)
    except ValueError:
        raise TunesmithError(f"cannot harmonise a melody in unknown key {song.key!r}") from None
    if per not in PERS:
        raise TunesmithError(f"unknown --per {per!r}; known: {', '.join(PERS)}")
    total = song.total_steps
    starts = full_bar_starts(song.bar_starts or [0], total, bar)
    lines = ([0] if starts[0] > 0 else []) + starts + [total]
    spq = song.steps_per_quarter
    measures = [(a / spq, (b - a) / spq) for a, b in zip(lines, lines[1:], strict=False) if b > a]
    notes, step = [], 0
    for note in song.notes:
        if note.pitch is not None:
            notes.append((step / spq, note.steps / spq, (note.pitch - tonic) % 12))
        step += note.steps
    return Passage(song.mode, song.meter, cut_spans(measures, song.meter, per), notes, name=song.title)


_SHIPPED: list[HarmonyModel] = []  # the shipped harmoniser, loaded on first use


def harmonize_with_shipped(song: Song, span: str = "auto") -> list[Chord]:
    """Chords for ``song`` by the harmoniser shipped with tunesmith (loaded once per process);
    ``span`` is "bar", "half" or "auto" (what the harmoniser learned for the meter)."""
    from tunesmith.harmony.model import load_harmony

    if not _SHIPPED:
        _SHIPPED.append(load_harmony())
    return harmonize(song, _SHIPPED[0], None if span == "auto" else span)


def harmonize(song: Song, model: HarmonyModel, per: str | None = None) -> list[Chord]:
    """Chords for ``song``, one per bar or half bar (``per``; None = what the model uses for the meter).

    Repeated chords inside one bar are merged, so a bar with one harmony gets one symbol.
    Roots are pitch classes in the key the notes sound in; symbols are spelt for that key.
    """
    per = per or model.per_for(song.meter)
    passage = song_passage(song, per)
    if song.mode not in model.states:
        raise TunesmithError(f"the harmoniser knows modes {', '.join(model.states)}, not {song.mode!r}")
    if not passage.notes:
        raise TunesmithError("the melody has no notes to harmonise")
    labels = model.decode(passage, per)
    tonic = tonic_pitch_class(song.key)
    spq = song.steps_per_quarter
    chords: list[Chord] = []
    for (start, end, starts_bar), (degree, quality) in zip(passage.spans, labels, strict=True):
        first, steps = round(start * spq), round((end - start) * spq)
        previous = chords[-1] if chords else None
        if previous is not None and not starts_bar and (previous.roman, previous.root) == (roman(degree, quality, song.mode), (tonic + degree) % 12):
            chords[-1] = replace(previous, steps=previous.steps + steps)
            continue
        name = spell_root(song.key, song.mode, degree)
        chords.append(Chord(first, steps, (tonic + degree) % 12, quality, roman(degree, quality, song.mode), symbol(name, quality)))
    return chords


def read_melody(path: str | Path, steps_per_quarter: int = 12) -> Song:
    """The first tune of any file the corpus reader takes, with its notes back in its own key.

    The grid is fine enough for triplets (12 steps a quarter): dance tunes have them.

    Raises TunesmithError when the file is missing or cannot be read as a melody.
    """
    from tunesmith.corpus.reader import make_jobs, read_job
    from tunesmith.corpus.sources import SourceFile

    path = Path(path)
    if not path.is_file():
        raise TunesmithError(f"no such file: {str(path)!r}")
    try:
        jobs = make_jobs(SourceFile(path, str(path)))
    except OSError as exc:
        raise TunesmithError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    # Anything on the grid; 0 lets ABC chord symbols (music21 ChordSymbols, no duration) through
    # the reader, which reads them as zero-length notes: those are dropped below.
    lengths = grid_lengths(steps_per_quarter, 8, zero=True)
    settings = {"steps_per_quarter": steps_per_quarter, "accepted_durations": lengths}
    result = read_job(jobs[0], settings)
    if "song" not in result:
        raise TunesmithError(f"cannot harmonise {str(path)!r}: {result['reason']} ({result['detail']})")
    song = Song.from_dict(result["song"])
    notes = [replace(n, pitch=None if n.pitch is None else n.pitch - song.transposition) for n in song.notes if n.steps > 0]
    if not any(n.pitch is not None for n in notes):
        raise TunesmithError(f"cannot harmonise {str(path)!r}: the melody has no notes")
    return replace(song, notes=notes, transposition=0)
