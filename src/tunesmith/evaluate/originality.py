"""Originality: the longest stretch of a melody that also occurs somewhere in the training corpus.

Notes are compared as (interval from the previous note, length in steps) — rests as (rest,
length) — so a phrase copied in another key still counts as copied. The corpus goes into one
suffix automaton (every substring of every training song, built in linear time); a melody is
then matched against it in one pass, whatever the corpus size: no all-pairs scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tunesmith.song import Note, Song, bar_steps

FIRST = "first"  # interval of a song's first note: it has no previous note to step from
REST = "rest"


def note_symbols(notes: Sequence[Note]) -> list[tuple]:
    """Transposition-invariant symbols of a note list: (interval in semitones, steps) per note.

    Parameters
    ----------
    notes : sequence of Note
        A melody; rests are ``Note(None, steps)``.

    Returns
    -------
    list of tuple
        ``(interval, steps)`` for a note (interval from the previous sounding note, ``"first"``
        for the first one), ``("rest", steps)`` for a rest.
    """
    symbols: list[tuple] = []
    previous: int | None = None
    for note in notes:
        if note.pitch is None:
            symbols.append((REST, note.steps))
        else:
            symbols.append((FIRST if previous is None else note.pitch - previous, note.steps))
            previous = note.pitch
    return symbols


@dataclass
class Match:
    """What one melody shares with the corpus: the most notes in one shared stretch (starting at
    note ``start``), and the longest time any shared stretch lasts, in ``steps`` and ``bars``."""

    notes: int
    steps: int
    bars: float
    start: int  # index of the stretch's first note in the melody


class SuffixAutomaton:
    """Minimal automaton of every substring of a symbol sequence (Blumer et al.; ≤ 2n states)."""

    def __init__(self) -> None:
        self.next: list[dict[int, int]] = [{}]
        self.link = [-1]
        self.length = [0]
        self.last = 0

    def extend(self, symbol: int) -> None:
        """Append one symbol to the indexed sequence (amortised O(1))."""
        nxt, link, length = self.next, self.link, self.length
        current = len(length)
        nxt.append({})
        length.append(length[self.last] + 1)
        link.append(0)
        state = self.last
        while state != -1 and symbol not in nxt[state]:
            nxt[state][symbol] = current
            state = link[state]
        if state != -1:
            target = nxt[state][symbol]
            if length[state] + 1 == length[target]:
                link[current] = target
            else:
                clone = len(length)
                nxt.append(dict(nxt[target]))
                length.append(length[state] + 1)
                link.append(link[target])
                while state != -1 and nxt[state].get(symbol) == target:
                    nxt[state][symbol] = clone
                    state = link[state]
                link[target] = link[current] = clone
        self.last = current

    def matching_lengths(self, symbols: Iterable[int]) -> np.ndarray:
        """For each position of ``symbols``: length of the longest indexed substring ending there."""
        nxt, link, length = self.next, self.link, self.length
        state, matched, out = 0, 0, []
        for symbol in symbols:
            while state and symbol not in nxt[state]:
                state = link[state]
                matched = length[state]
            if symbol in nxt[state]:
                state, matched = nxt[state][symbol], matched + 1
            else:
                state, matched = 0, 0
            out.append(matched)
        return np.array(out, dtype=np.int64)


class OriginalityIndex:
    """Every (interval, length) stretch of a corpus, for finding what a melody shares with it."""

    def __init__(self, songs: Iterable[Song]):
        self.codes: dict[tuple, int] = {}
        self.automaton = SuffixAutomaton()
        self.songs = 0
        for song in songs:
            for symbol in note_symbols(song.notes):
                self.automaton.extend(self.codes.setdefault(symbol, len(self.codes)))
            self.songs += 1
            # A symbol no melody contains ends each song, so no stretch runs across two songs.
            self.automaton.extend(-self.songs)

    def longest_match(self, song: Song) -> Match:
        """The longest stretch of ``song`` that occurs in the corpus (the longest-lasting on a tie).

        Returns
        -------
        Match
            ``notes`` = 0 when no single symbol of the melody occurs in the corpus.
        """
        steps = np.array([n.steps for n in song.notes], dtype=np.int64)
        lengths = self.automaton.matching_lengths(self.codes.get(s, -(10**9)) for s in note_symbols(song.notes))
        if not len(lengths) or lengths.max() == 0:
            return Match(0, 0, 0.0, 0)
        ends = np.cumsum(steps)
        starts_steps = np.concatenate([[0], ends])[np.arange(len(lengths)) + 1 - lengths]
        durations = ends - starts_steps
        best = int(np.lexsort((durations, lengths))[-1])
        bar = bar_steps(song.meter, song.steps_per_quarter)
        start = best + 1 - int(lengths[best])
        longest_steps = int(durations.max())  # the longest-lasting copy need not be the one with most notes
        return Match(int(lengths[best]), longest_steps, longest_steps / bar, start)


def originality(index: OriginalityIndex, songs: Sequence[Song], copy_bars: float = 2.0) -> dict:
    """Shared-stretch statistics of a set of melodies against the index.

    Parameters
    ----------
    index : OriginalityIndex
        Built from the training corpus.
    songs : sequence of Song
        Generated melodies, or held-out real ones for the human baseline.
    copy_bars : float
        A melody "copies" when a shared stretch lasts more than this many bars.

    Returns
    -------
    dict
        ``longest_notes`` and ``longest_bars`` (per melody lists), their ``mean_notes``,
        ``median_notes``, ``mean_bars``, and ``copy_share`` (share of melodies copying).
    """
    matches = [index.longest_match(song) for song in songs]
    notes = np.array([m.notes for m in matches], dtype=float)
    bars = np.array([m.bars for m in matches], dtype=float)
    return {
        "longest_notes": notes.astype(int).tolist(),
        "longest_bars": bars.round(3).tolist(),
        "mean_notes": float(notes.mean()) if len(notes) else float("nan"),
        "median_notes": float(np.median(notes)) if len(notes) else float("nan"),
        "mean_bars": float(bars.mean()) if len(bars) else float("nan"),
        "copy_share": float((bars > copy_bars).mean()) if len(bars) else float("nan"),
        "copy_bars": copy_bars,
    }
