"""``OriginalityIndex``: every (interval, length) stretch of a corpus, and what a melody shares with it.

The corpus goes into one suffix automaton (every substring of every training song, built in
linear time); a melody is then matched against it in one pass, whatever the corpus size: no
all-pairs scan. The index also remembers each song's title and bars, so the longest shared
stretch can be shown as "bars 3–6 of *Der Mai ist gekommen*".
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tunesmith.originality.automaton import SuffixAutomaton, note_codes
from tunesmith.song import Song, bar_steps


@dataclass
class Match:
    """What one melody shares with the corpus: the most notes in one shared stretch (starting at
    note ``start``), and the longest time any shared stretch lasts, in ``steps`` and ``bars``."""

    notes: int
    steps: int
    bars: float
    start: int  # index of the stretch's first note in the melody


def bar_number(bar_starts: Sequence[int], step: int, bar_length: int) -> int:
    """Bar (1-based) holding ``step``; a pickup before the first bar start is bar 0.

    Past the last known bar start, bars of ``bar_length`` steps follow one another.
    """
    starts = sorted(bar_starts)
    if not starts:
        return step // bar_length + 1
    number = bisect_right(starts, step)
    if number == len(starts):
        number += (step - starts[-1]) // bar_length
    # A melody whose first bar starts at step 0 and is short (a pickup written as a bar) counts it as bar 0.
    if starts[0] == 0 and len(starts) > 1 and starts[1] < bar_length:
        number -= 1
    return number


class OriginalityIndex:
    """Every (interval, length) stretch of a corpus, for finding what a melody shares with it."""

    def __init__(self, songs: Iterable[Song] = ()):
        self.automaton = SuffixAutomaton()
        self.songs = 0
        self.starts: list[int] = []  # where each song's symbols begin in the indexed sequence
        self.note_steps: list[np.ndarray] = []  # each song's note lengths
        self.titles: list[str] = []
        self.meters: list[str] = []
        self.steps_per_quarter: list[int] = []
        self.bar_starts: list[list[int]] = []
        for song in songs:
            self.add(note_codes(song.notes), [n.steps for n in song.notes], song.title, song.meter,
                     song.steps_per_quarter, song.bar_starts)  # fmt: skip

    def add(self, codes: Sequence[int], steps: Sequence[int], title: str, meter: str, steps_per_quarter: int,
            bar_starts: Sequence[int]) -> None:  # fmt: skip
        """Index one song given as symbol codes (see ``automaton.note_codes``) and note lengths."""
        self.starts.append(self.automaton.size)
        self.songs += 1
        # A symbol no melody contains ends each song, so no stretch runs across two songs.
        self.automaton.extend_all([*codes, -self.songs])
        self.note_steps.append(np.asarray(steps, dtype=np.int64))
        self.titles.append(title)
        self.meters.append(meter)
        self.steps_per_quarter.append(int(steps_per_quarter))
        self.bar_starts.append([int(s) for s in bar_starts])

    def _matches(self, song: Song):
        steps = np.array([n.steps for n in song.notes], dtype=np.int64)
        lengths, states = self.automaton.match(note_codes(song.notes))
        ends = np.cumsum(steps)
        starts_steps = np.concatenate([[0], ends])[np.arange(len(lengths)) + 1 - lengths]
        return lengths, states, ends, ends - starts_steps

    def longest_match(self, song: Song) -> Match:
        """The longest stretch of ``song`` that occurs in the corpus (the longest-lasting on a tie).

        Returns
        -------
        Match
            ``notes`` = 0 when no single symbol of the melody occurs in the corpus.
        """
        lengths, _, _, durations = self._matches(song)
        if not len(lengths) or lengths.max() == 0:
            return Match(0, 0, 0.0, 0)
        best = int(np.lexsort((durations, lengths))[-1])
        bar = bar_steps(song.meter, song.steps_per_quarter)
        start = best + 1 - int(lengths[best])
        longest_steps = int(durations.max())  # the longest-lasting copy need not be the one with most notes
        return Match(int(lengths[best]), longest_steps, longest_steps / bar, start)

    def describe(self, song: Song) -> dict:
        """The longest stretch ``song`` shares with the corpus, where it lies, and the tune it is from.

        Returns
        -------
        dict
            ``notes`` (0 when nothing is shared), ``steps`` and ``bars`` it lasts, ``melody_bars``
            [first, last] bar of the melody it spans, ``tune`` (title of the nearest training
            tune: the one holding that stretch, its first occurrence), ``tune_index``, and
            ``tune_bars`` [first, last] of the stretch in that tune. Bars count from 1, a pickup is bar 0.
        """
        from tunesmith.corpus.split import readable_title  # here: the corpus package is slow to import

        lengths, states, ends, durations = self._matches(song)
        if not len(lengths) or lengths.max() == 0:
            return {"notes": 0, "steps": 0, "bars": 0.0, "melody_bars": None, "tune": None, "tune_index": None,
                    "tune_bars": None}  # fmt: skip
        best = int(np.lexsort((durations, lengths))[-1])
        notes = int(lengths[best])
        bar = bar_steps(song.meter, song.steps_per_quarter)
        first_step, last_step = int(ends[best] - durations[best]), int(ends[best]) - 1
        tune = bisect_right(self.starts, self.automaton.end[states[best]]) - 1
        last_note = self.automaton.end[states[best]] - self.starts[tune]
        onsets = np.concatenate([[0], np.cumsum(self.note_steps[tune])])
        tune_bar = bar_steps(self.meters[tune], self.steps_per_quarter[tune])
        tune_first = int(onsets[last_note + 1 - notes])
        tune_last = int(onsets[last_note + 1]) - 1
        return {
            "notes": notes,
            "steps": int(durations[best]),
            "bars": round(float(durations[best]) / bar, 3),
            "melody_bars": [bar_number(song.bar_starts, first_step, bar), bar_number(song.bar_starts, last_step, bar)],
            "tune": readable_title(self.titles[tune]),
            "tune_index": tune,
            "tune_bars": [bar_number(self.bar_starts[tune], tune_first, tune_bar),
                          bar_number(self.bar_starts[tune], tune_last, tune_bar)],  # fmt: skip
        }

