"""Transposition-invariant note symbols and the suffix automaton that indexes them.

A note is compared as (interval from the previous sounding note, length in steps); a rest as
(rest, length). Each symbol is also packed into one integer code (:func:`symbol_code`), so the
automaton's transitions are small int-keyed dicts and a code can be computed for any symbol,
whether or not the corpus holds it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

import numpy as np

from tunesmith.song import Note

FIRST = "first"  # interval of a song's first note: it has no previous note to step from
REST = "rest"
# Interval keys: small integers for "rest" and "first", the interval plus an offset otherwise.
REST_KEY, FIRST_KEY, INTERVAL_OFFSET = 1, 2, 1024
FROZEN_FORMAT = 2  # layout of freeze()'s arrays (2: edges sorted, each state's run recorded); part of the cache key
STEPS_RANGE = 1 << 16  # codes pack (key, steps) as key * STEPS_RANGE + steps: under 2**27


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


def interval_key(pitch: int | None, previous: int | None) -> int:
    """Key of a note's interval part: ``REST_KEY``, ``FIRST_KEY`` or the interval offset by 1024."""
    if pitch is None:
        return REST_KEY
    return FIRST_KEY if previous is None else pitch - previous + INTERVAL_OFFSET


def symbol_code(key: int, steps: int) -> int:
    """One integer for (interval key, steps); distinct symbols get distinct codes (a note of more
    than 65,535 steps — over 1,000 bars — counts as 65,535 steps long)."""
    return key * STEPS_RANGE + min(steps, STEPS_RANGE - 1)


def note_codes(notes: Sequence[Note]) -> list[int]:
    """The symbols of :func:`note_symbols` as integer codes."""
    codes, previous = [], None
    for note in notes:
        codes.append(symbol_code(interval_key(note.pitch, previous), note.steps))
        if note.pitch is not None:
            previous = note.pitch
    return codes


def array_codes(pitches: np.ndarray, steps: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Codes of songs given as arrays (pitch −1 = rest): the vectorised :func:`note_codes`.

    ``offsets`` (song boundaries, ``[0, n1, n1 + n2, …]``) lets one call cover many songs: an
    interval never reaches back into the song before.
    """
    pitches, steps = np.asarray(pitches, dtype=np.int64), np.asarray(steps, dtype=np.int64)
    count = len(pitches)
    offsets = np.array([0, count]) if offsets is None else np.asarray(offsets, dtype=np.int64)
    song_start = np.repeat(offsets[:-1], np.diff(offsets))
    sounding = pitches >= 0
    # previous sounding pitch of each note: the last pitch before it in its song (forward fill)
    last = np.maximum.accumulate(np.where(sounding, np.arange(count), -1)) if count else np.zeros(0, np.int64)
    before = np.concatenate([[-1], last[:-1]]) if count else last
    has_previous = before >= song_start
    keys = np.where(has_previous, pitches - pitches[np.maximum(before, 0)] + INTERVAL_OFFSET, FIRST_KEY)
    keys = np.where(sounding, keys, REST_KEY)
    return keys * STEPS_RANGE + np.minimum(steps, STEPS_RANGE - 1)


class SuffixAutomaton:
    """Minimal automaton of every substring of a symbol sequence (Blumer et al.; ≤ 2n states).

    ``end[state]`` is where the first occurrence of the state's substrings ends (an index into
    the indexed sequence), so a match can be traced back to the song it comes from.
    """

    def __init__(self) -> None:
        self.next: list[dict[int, int]] = [{}]
        self.link = [-1]
        self.length = [0]
        self.end = [-1]
        self.last = 0
        self.size = 0  # symbols indexed so far

    def extend(self, symbol: int) -> None:
        """Append one symbol to the indexed sequence (amortised O(1))."""
        self.extend_all((symbol,))

    def extend_all(self, symbols: Iterable[int]) -> None:
        """Append symbols one after another (the construction loop, with its names kept local)."""
        nxt, link, length, end = self.next, self.link, self.length, self.end
        last, size = self.last, self.size
        for symbol in symbols:
            current = len(length)
            nxt.append({})
            length.append(length[last] + 1)
            link.append(0)
            end.append(size)
            state = last
            while state != -1 and symbol not in nxt[state]:
                nxt[state][symbol] = current
                state = link[state]
            if state != -1:
                target = nxt[state][symbol]
                if length[state] + 1 == length[target]:
                    link[current] = target
                else:
                    clone = len(length)
                    nxt.append(nxt[target].copy())
                    length.append(length[state] + 1)
                    link.append(link[target])
                    end.append(end[target])
                    while state != -1 and nxt[state].get(symbol) == target:
                        nxt[state][symbol] = clone
                        state = link[state]
                    link[target] = link[current] = clone
            last, size = current, size + 1
        self.last, self.size = last, size

    def has(self, state: int, symbol: int) -> bool:
        """Whether ``symbol`` extends the substrings of ``state``."""
        return symbol in self.next[state]

    def out(self, state: int) -> list[int]:
        """The symbols that extend the substrings of ``state`` (song separators included)."""
        return list(self.next[state])

    def freeze(self) -> dict[str, np.ndarray]:
        """Flat arrays of the automaton for :class:`FrozenAutomaton` (song separators left out:
        no melody contains them)."""
        sources = np.repeat(np.arange(len(self.next), dtype=np.int32), [len(d) for d in self.next])
        codes = np.fromiter((c for d in self.next for c in d), dtype=np.int64, count=len(sources))
        targets = np.fromiter((t for d in self.next for t in d.values()), dtype=np.int32, count=len(sources))
        keep = codes >= 0
        sources, codes, targets = sources[keep], codes[keep], targets[keep]
        order = np.lexsort((codes, sources))  # each state's edges a run, sorted by code: searched by bisection
        sources, codes, targets = sources[order], codes[order], targets[order]
        offsets = np.searchsorted(sources, np.arange(len(self.next) + 1)).astype(np.int64)
        return {"edge_codes": codes.astype(np.int32), "edge_targets": targets, "edge_offsets": offsets,
                "link": np.array(self.link, dtype=np.int32),
                "length": np.array(self.length, dtype=np.int32), "end": np.array(self.end, dtype=np.int32)}  # fmt: skip

    def walk(self, state: int, matched: int, symbol: int) -> tuple[int, int]:
        """One matching step: from ``state`` with ``matched`` symbols matched, read ``symbol``.

        Returns the new state and the length of the longest indexed substring ending at this
        symbol. It grows by one exactly when ``symbol`` is in ``next[state]``; otherwise it
        falls back along suffix links and never grows.
        """
        nxt, link, length = self.next, self.link, self.length
        while state and symbol not in nxt[state]:
            state = link[state]
            matched = length[state]
        target = nxt[state].get(symbol)
        return (0, 0) if target is None else (target, matched + 1)

    def match(self, symbols: Iterable[int]) -> tuple[np.ndarray, list[int]]:
        """Matched length and automaton state at each position of ``symbols``."""
        state, matched, lengths, states = 0, 0, [], []
        for symbol in symbols:
            state, matched = self.walk(state, matched, symbol)
            lengths.append(matched)
            states.append(state)
        return np.array(lengths, dtype=np.int64), states

    def matching_lengths(self, symbols: Iterable[int]) -> np.ndarray:
        """For each position of ``symbols``: length of the longest indexed substring ending there."""
        return self.match(symbols)[0]


class FrozenAutomaton(SuffixAutomaton):
    """A built :class:`SuffixAutomaton` loaded from :meth:`~SuffixAutomaton.freeze`'s arrays.

    Each state's out-edges are a sorted run of one flat array (``freeze`` sorts them and records
    where each state's run starts), searched by bisection. The arrays are read through memoryviews,
    which index to Python ints without copying (a bisection on one is no slower than on a list), so
    loading converts nothing: no dict per state to rebuild, nothing to sort, no list of half a
    million ints to make. Read-only: it matches, it does not grow.
    """

    def __init__(self, arrays: dict[str, np.ndarray]):  # noqa: super().__init__ is not wanted
        def view(name: str) -> memoryview:
            return memoryview(np.ascontiguousarray(arrays[name], dtype=np.int64 if name == "edge_offsets" else np.int32))

        self._codes, self._targets, self._offsets = view("edge_codes"), view("edge_targets"), view("edge_offsets")
        self.link, self.length, self.end = view("link"), view("length"), view("end")
        if len(self._offsets) != len(self.length) + 1 or self._offsets[-1] != len(self._codes):
            raise ValueError("the frozen automaton's edge offsets do not match its states and edges")
        self.size = int(np.max(arrays["end"])) + 1  # symbols indexed, song separators included

    def extend_all(self, symbols: Iterable[int]) -> None:
        raise TypeError("a frozen automaton cannot grow")

    def _target(self, state: int, symbol: int) -> int | None:
        low, high = self._offsets[state], self._offsets[state + 1]
        where = bisect_left(self._codes, symbol, low, high)
        return self._targets[where] if where < high and self._codes[where] == symbol else None

    def has(self, state: int, symbol: int) -> bool:
        return self._target(state, symbol) is not None

    def out(self, state: int) -> list[int]:
        return self._codes[self._offsets[state] : self._offsets[state + 1]]

    def walk(self, state: int, matched: int, symbol: int) -> tuple[int, int]:
        target = self._target(state, symbol)
        while target is None and state:
            state = self.link[state]
            matched = self.length[state]
            target = self._target(state, symbol)
        return (0, 0) if target is None else (target, matched + 1)
