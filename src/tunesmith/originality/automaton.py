"""Transposition-invariant note symbols and the suffix automaton that indexes them.

A note is compared as (interval from the previous sounding note, length in steps); a rest as
(rest, length). Each symbol is also packed into one integer code (:func:`symbol_code`), so the
automaton's transitions are small int-keyed dicts and a code can be computed for any symbol,
whether or not the corpus holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from tunesmith.song import Note

FIRST = "first"  # interval of a song's first note: it has no previous note to step from
REST = "rest"
# Interval keys: small integers for "rest" and "first", the interval plus an offset otherwise.
REST_KEY, FIRST_KEY, INTERVAL_OFFSET = 1, 2, 1024
STEPS_RANGE = 1 << 32  # codes pack (key, steps) as key * STEPS_RANGE + steps


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
    """One integer for (interval key, steps); distinct symbols get distinct codes."""
    return key * STEPS_RANGE + steps


def note_codes(notes: Sequence[Note]) -> list[int]:
    """The symbols of :func:`note_symbols` as integer codes."""
    codes, previous = [], None
    for note in notes:
        codes.append(symbol_code(interval_key(note.pitch, previous), note.steps))
        if note.pitch is not None:
            previous = note.pitch
    return codes


def array_codes(pitches: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Codes of one song given as arrays (pitch −1 = rest): the vectorised :func:`note_codes`."""
    pitches, steps = np.asarray(pitches, dtype=np.int64), np.asarray(steps, dtype=np.int64)
    sounding = pitches >= 0
    # previous sounding pitch of each note: the last pitch before it (forward fill), -1 if none
    index = np.where(sounding, np.arange(len(pitches)), -1)
    last = np.maximum.accumulate(index) if len(index) else index
    before = np.concatenate([[-1], last[:-1]]) if len(last) else last
    previous = np.where(before >= 0, pitches[np.maximum(before, 0)], 0)
    keys = np.where(before >= 0, pitches - previous + INTERVAL_OFFSET, FIRST_KEY)
    keys = np.where(sounding, keys, REST_KEY)
    return keys * STEPS_RANGE + steps


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
        nxt, link, length = self.next, self.link, self.length
        current = len(length)
        nxt.append({})
        length.append(length[self.last] + 1)
        link.append(0)
        self.end.append(self.size)
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
                self.end.append(self.end[target])
                while state != -1 and nxt[state].get(symbol) == target:
                    nxt[state][symbol] = clone
                    state = link[state]
                link[target] = link[current] = clone
        self.last = current
        self.size += 1

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
