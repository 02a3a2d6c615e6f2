"""Dry-out: does note density fall away over a long generation?

The original model "dried out" on long outputs: fewer and fewer notes, then long held notes
and rests. Here long melodies (64 bars by default) are generated and the notes per bar are
averaged by bar index; the figure of merit is last-quarter ÷ first-quarter note density
(1 = steady, below 1 = drying out). Real songs give the human reference, each over its own length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunesmith.evaluate.metrics import bar_note_counts, notes_per_bar
from tunesmith.song import Song


@dataclass
class DryoutConfig:
    """The long-generation test."""

    num: int = 32  # melodies generated
    bars: int = 64  # length asked for, in bars
    min_bars: int = 8  # real songs shorter than this are left out of the human reference


def quarter_ratio(counts: np.ndarray) -> float:
    """Mean of the last quarter of ``counts`` ÷ mean of the first quarter.

    Parameters
    ----------
    counts : ndarray, shape (bars,)
        Notes per bar (or a mean curve), in bar order; NaN entries are ignored.

    Returns
    -------
    float
        NaN with fewer than 4 bars or an empty first quarter.
    """
    counts = np.asarray(counts, dtype=float)
    quarter = len(counts) // 4
    if quarter == 0:
        return float("nan")
    first, last = np.nanmean(counts[:quarter]), np.nanmean(counts[-quarter:])
    return float(last / first) if first > 0 else float("nan")


def density_curve(songs: Sequence[Song], bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean notes per bar at each bar index over melodies that reach that bar.

    Parameters
    ----------
    songs : sequence of Song
    bars : int
        Length of the curve.

    Returns
    -------
    (ndarray of float, ndarray of int), both shape (bars,)
        The mean notes per bar (NaN where no melody reaches the bar) and how many melodies
        reach each bar (a melody that ends early stops counting; it has not dried out, it ended).
    """
    totals = np.zeros(bars)
    reached = np.zeros(bars, dtype=np.int64)
    for song in songs:
        counts = bar_note_counts(song)[:bars]
        totals[: len(counts)] += counts
        reached[: len(counts)] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reached > 0, totals / np.maximum(reached, 1), np.nan), reached


def dryout(generated: Sequence[Song], real: Sequence[Song], bars: int, min_bars: int = 8) -> dict:
    """Dry-out statistics of long generated melodies, with real songs as the reference.

    Returns
    -------
    dict
        ``curve`` and ``reached`` (see :func:`density_curve`), ``ratio`` (last ÷ first quarter
        of the mean curve over bars that at least half the melodies reach), ``median_song_ratio``
        (median of each melody's own ratio), ``mean_bars`` (generated length), ``real_ratio``
        (median ratio of real songs with at least ``min_bars`` bars, each over its own length),
        ``real_notes_per_bar`` (mean over all the real songs).
    """
    curve, reached = density_curve(generated, bars)
    steady = reached >= max(1, len(generated) / 2)  # the tail end only a few melodies reach is noise
    own = [quarter_ratio(bar_note_counts(song)) for song in generated]
    real_own = [quarter_ratio(bar_note_counts(song)) for song in real if len(bar_note_counts(song)) >= min_bars]
    lengths = [len(bar_note_counts(song)) for song in generated]
    return {
        "bars": bars,
        "curve": [None if np.isnan(v) else round(float(v), 4) for v in curve],
        "reached": reached.tolist(),
        "ratio": quarter_ratio(curve[steady]) if steady.any() else float("nan"),
        "median_song_ratio": float(np.nanmedian(own)) if np.isfinite(own).any() else float("nan"),
        "mean_bars": float(np.mean(lengths)) if lengths else float("nan"),
        "real_ratio": float(np.nanmedian(real_own)) if np.isfinite(real_own).any() else float("nan"),
        "real_songs": len(real_own),
        "real_notes_per_bar": float(np.mean([notes_per_bar(s) for s in real])) if real else float("nan"),
    }
