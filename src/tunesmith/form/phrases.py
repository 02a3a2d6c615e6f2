"""Phrases of a song: where they start, how long they are, how they end.

A song's phrases are kept on the :class:`~tunesmith.song.Song` as ``phrase_starts`` (the step
at which each phrase begins; the first is 0) and ``phrase_source``, which says how they were
found:

``"kern marks"``
    the editors' ``{`` … ``}`` marks of an Essen kern file;
``"abc lines"``
    one phrase per line of an Essen ABC tune (music21's bundled edition);
``"parts"``
    the ``P:`` parts of an ABC tune without repeats;
``"repeats"``
    the sections of a tune with written repeats (``|: :|``, ``[1 [2``, double bars), one
    phrase per pass after the repeats are expanded (the Nottingham dance tunes);
``"rule"``
    :func:`rule_phrase_starts` for everything else (MIDI, MusicXML, other ABC, generated
    melodies without a plan).

The rule: a phrase ends at a bar line when the note sounding into it (or a rest just before
it) is long — at least half a bar, or a rest of any length — and the phrase has lasted at
least two bars; a phrase that reaches four bars without such an ending is cut there. No cut
leaves less than two bars for the last phrase. This
finds the cadences of most folk songs (long final notes) and otherwise gives regular 4-bar
phrases.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from tunesmith.song import Song, bar_steps

SOURCES = ("kern marks", "abc lines", "parts", "repeats", "rule")
# Degree names of the 12 semitones above the tonic, in the song's mode.
_DEGREES = {
    "major": ("1", "b2", "2", "b3", "3", "4", "#4", "5", "b6", "6", "b7", "7"),
    "minor": ("1", "b2", "2", "3", "#3", "4", "#4", "5", "6", "#6", "7", "#7"),
}
_TONIC_PC = {"major": 0, "minor": 9}  # songs are transposed to C major / A minor


@dataclass(frozen=True)
class Phrase:
    """One phrase: steps ``start`` to ``start + steps``; ``notes`` are indexes into ``song.notes``.

    ``bars`` is the phrase's length in whole bars (steps / bar length, rounded, halves up: a
    pickup and the rest that ends a phrase offset each other, and a last phrase an upbeat of half
    a bar shortens keeps its count). ``final_pitch`` is the last sounding
    note's MIDI pitch, ``final_degree`` its scale degree ("1", "5", "b7"…), ``final_steps``
    its length in steps.
    """

    index: int
    start: int
    steps: int
    first_note: int
    last_note: int  # exclusive
    bars: int
    final_pitch: int | None
    final_degree: str
    final_steps: int

    @property
    def end(self) -> int:
        return self.start + self.steps


def scale_degree(pitch: int, mode: str, tonic_pc: int | None = None) -> str:
    """Scale degree of a MIDI pitch: "1".."7", with b/# for notes outside the mode's scale.

    The tonic is C (major) / A (minor), where every :class:`Song` is transposed, unless
    ``tonic_pc`` says otherwise. Minor degrees are those of natural minor (so G# in A minor
    is "#7").
    """
    tonic = _TONIC_PC.get(mode, 0) if tonic_pc is None else tonic_pc
    return _DEGREES.get(mode, _DEGREES["major"])[(pitch - tonic) % 12]


def note_starts(song: Song) -> list[int]:
    """Step at which each note of ``song`` starts (rests included)."""
    starts, step = [], 0
    for note in song.notes:
        starts.append(step)
        step += note.steps
    return starts


def rule_phrase_starts(song: Song, min_bars: int = 2, max_bars: int = 4) -> list[int]:
    """Phrase starts by the documented rule (see the module docstring), always beginning with 0.

    Bar lines come from ``song.bar_starts``; a phrase may end only on one of them. The note
    ending at the bar line (and any rest after it) belongs to the phrase it closes.
    """
    bar = bar_steps(song.meter, song.steps_per_quarter)
    total = song.total_steps
    bars = sorted(b for b in set(song.bar_starts) if 0 < b < total)
    starts = [0]
    ends_long = _long_endings(song, bar)
    for line in bars:
        lasted, left = line - starts[-1], total - line
        if left >= min_bars * bar and (lasted >= max_bars * bar or (lasted >= min_bars * bar and line in ends_long)):
            starts.append(line)
    return clean_phrase_starts(starts, song)


def _long_endings(song: Song, bar: int) -> set[int]:
    """Steps where a long note (≥ half a bar) ends or a rest touches the bar line."""
    found, step = set(), 0
    notes = song.notes
    for i, note in enumerate(notes):
        end = step + note.steps
        if note.pitch is None or note.steps * 2 >= bar:
            found.add(end)
            if note.pitch is None:
                found.add(step)
        elif i + 1 < len(notes) and notes[i + 1].pitch is None:
            found.add(end)
        step = end
    return found


def clean_phrase_starts(starts: list[int], song: Song) -> list[int]:
    """Sorted, unique starts inside the song, moved back to the note they fall in, from 0.

    A first phrase shorter than a bar (a pickup before a marked start) joins the next one.
    """
    onsets = note_starts(song)
    total = song.total_steps
    result = [0]
    for start in sorted(starts):
        if not 0 < start < total:
            continue
        at = bisect.bisect_right(onsets, start)  # onsets ascend: the last one at or before start
        snapped = onsets[at - 1] if at else 0
        if snapped > result[-1]:
            result.append(snapped)
    if len(result) > 1 and result[1] < bar_steps(song.meter, song.steps_per_quarter):
        del result[1]
    return result


def song_phrase_starts(song: Song) -> list[int]:
    """The song's recorded phrase starts (cleaned), or the rule's when it has none."""
    if getattr(song, "phrase_starts", None):
        return clean_phrase_starts(list(song.phrase_starts), song)
    return rule_phrase_starts(song)


def song_phrases(song: Song) -> list[Phrase]:
    """The song's phrases with their lengths and endings (see :class:`Phrase`)."""
    starts = song_phrase_starts(song)
    onsets = note_starts(song)
    total = song.total_steps
    bar = bar_steps(song.meter, song.steps_per_quarter)
    phrases = []
    bounds = starts + [total]
    note_index = 0
    for i, (start, end) in enumerate(zip(bounds, bounds[1:])):
        first = note_index
        while note_index < len(onsets) and onsets[note_index] < end:
            note_index += 1
        last = note_index
        pitched = [j for j in range(first, last) if song.notes[j].pitch is not None]
        final = song.notes[pitched[-1]] if pitched else None
        phrases.append(Phrase(
            index=i, start=start, steps=end - start, first_note=first, last_note=last,
            bars=max(1, int((end - start) / bar + 0.5)),  # halves up: 2.5 bars (3 less an upbeat) are 3
            final_pitch=final.pitch if final else None,
            final_degree=scale_degree(final.pitch, song.mode) if final and final.pitch is not None else "",
            final_steps=final.steps if final else 0,
        ))  # fmt: skip
    return phrases


def offsets_to_steps(offsets: list[float], steps_per_quarter: int) -> list[int]:
    """Quarter-note offsets (music21's) → steps on the grid, rounded down."""
    return [int(offset * steps_per_quarter + 1e-6) for offset in offsets]
