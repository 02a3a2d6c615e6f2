"""Originality: the longest stretch of a melody that also occurs somewhere in the training corpus.

The index itself (transposition-invariant symbols, suffix automaton) lives in
:mod:`tunesmith.originality`, where generation's copy guard uses it too; this module adds the
set statistics the evaluation reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunesmith.originality import FIRST, REST, Match, OriginalityIndex, SuffixAutomaton, note_symbols
from tunesmith.song import Song

__all__ = ["FIRST", "REST", "Match", "OriginalityIndex", "SuffixAutomaton", "note_symbols", "originality"]


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
