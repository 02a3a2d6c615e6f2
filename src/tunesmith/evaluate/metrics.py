"""Per-melody features (MusPy-style pure functions) that the generated-vs-real comparison reads.

Every function takes a :class:`~tunesmith.song.Song` and returns a number or a fixed-length
array, so a feature can be compared across melodies of any length. Rests are ``Note(None, steps)``;
bar structure comes from ``song.bar_starts`` (regular bars of ``song.meter`` when it is empty).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunesmith.config import DEFAULT_DURATIONS
from tunesmith.meter import song_bar_starts
from tunesmith.song import MAJOR_SCALE, NATURAL_MINOR_SCALE, Song
INTERVAL_LIMIT = 12  # intervals beyond an octave share the outermost histogram bins


def _pitches(song: Song) -> np.ndarray:
    return np.array([n.pitch for n in song.notes if n.pitch is not None], dtype=np.int64)


def _onsets(song: Song) -> np.ndarray:
    """Start step of every pitched note."""
    starts = np.cumsum([0] + [n.steps for n in song.notes[:-1]]) if song.notes else np.zeros(0, np.int64)
    return np.array([s for s, n in zip(starts, song.notes) if n.pitch is not None], dtype=np.int64)


def bar_note_counts(song: Song) -> np.ndarray:
    """Number of note onsets in each bar, from the first bar line to the end (a pickup is not a bar).

    Parameters
    ----------
    song : Song
        The melody; ``bar_starts`` give the bar lines, regular bars of ``meter`` continue after
        the last one (or fill in when there are none).

    Returns
    -------
    ndarray of int, shape (bars,)
        Onsets per bar; the last bar runs to the end of the melody.
    """
    starts = song_bar_starts(song)
    index = np.searchsorted(np.array(starts), _onsets(song), side="right") - 1
    return np.bincount(index[index >= 0], minlength=len(starts))


def pitch_count(song: Song) -> int:
    """Number of distinct pitches (MIDI numbers) used.

    Returns
    -------
    int
        0 for a melody with no notes.
    """
    return int(len(np.unique(_pitches(song))))


def pitch_range(song: Song) -> int:
    """Highest minus lowest pitch, in semitones (0 for no notes or a single pitch)."""
    pitches = _pitches(song)
    return int(pitches.max() - pitches.min()) if len(pitches) else 0


def pitch_class_histogram(song: Song) -> np.ndarray:
    """Share of notes on each pitch class C, C#, ..., B (counting notes, not their lengths).

    Returns
    -------
    ndarray of float, shape (12,)
        Sums to 1, or all zeros for a melody with no notes.
    """
    counts = np.bincount(_pitches(song) % 12, minlength=12).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def pitch_class_entropy(song: Song) -> float:
    """Shannon entropy of the pitch-class histogram, in bits (0 = one pitch class, log2 12 ≈ 3.58 max).

    Returns
    -------
    float
        Lower values mean a more tonal, less chromatic melody.
    """
    histogram = pitch_class_histogram(song)
    nonzero = histogram[histogram > 0]
    return float(-(nonzero * np.log2(nonzero)).sum()) if len(nonzero) else 0.0


# the pitch classes of the 24 major and natural-minor scales, one row each (scale_consistency)
_SCALE_NOTES = np.array([[(tonic + d) % 12 for d in scale] for scale in (MAJOR_SCALE, NATURAL_MINOR_SCALE)
                         for tonic in range(12)])  # fmt: skip


def scale_consistency(song: Song) -> float:
    """Largest share of notes that fit one major or natural-minor scale (any of the 24).

    Returns
    -------
    float
        In [0, 1]; 1 when every note lies in one diatonic scale, 0 for a melody with no notes.
    """
    histogram = pitch_class_histogram(song)
    if not histogram.any():
        return 0.0
    return max(0.0, float(histogram[_SCALE_NOTES].sum(axis=1).max()))  # each row summed in its scale's order


def intervals(song: Song) -> np.ndarray:
    """Signed semitone steps between consecutive notes (rests are skipped over)."""
    return np.diff(_pitches(song))


def interval_histogram(song: Song) -> np.ndarray:
    """Share of melodic intervals from −12 to +12 semitones (wider leaps land in the end bins).

    Returns
    -------
    ndarray of float, shape (25,)
        Index ``i`` holds interval ``i − 12``; sums to 1, or all zeros with fewer than two notes.
    """
    steps = np.clip(intervals(song), -INTERVAL_LIMIT, INTERVAL_LIMIT) + INTERVAL_LIMIT
    counts = np.bincount(steps, minlength=2 * INTERVAL_LIMIT + 1).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def mean_absolute_interval(song: Song) -> float:
    """Mean size of melodic steps, in semitones (0 with fewer than two notes)."""
    steps = intervals(song)
    return float(np.abs(steps).mean()) if len(steps) else 0.0


def note_length_histogram(song: Song, lengths: list[float] | None = None) -> np.ndarray:
    """Share of notes of each length (in quarters), plus a last bin for any other length.

    Parameters
    ----------
    song : Song
    lengths : list of float, optional
        Quarter lengths to count; default the corpus' accepted durations (1/16 … whole note).

    Returns
    -------
    ndarray of float, shape (len(lengths) + 1,)
        Sums to 1, or all zeros for a melody with no notes.
    """
    lengths = list(DEFAULT_DURATIONS if lengths is None else lengths)
    quarters = np.array([n.steps / song.steps_per_quarter for n in song.notes if n.pitch is not None])
    # each note's bin: the last length it is close to (as a loop over the lengths would leave it), else the last bin
    close = np.isclose(quarters[:, None], np.asarray(lengths, dtype=float)[None, :])
    index = np.where(close.any(axis=1), len(lengths) - 1 - close[:, ::-1].argmax(axis=1), len(lengths))
    counts = np.bincount(index, minlength=len(lengths) + 1).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def inter_onset_interval(song: Song) -> float:
    """Mean time between consecutive note onsets, in quarters (rests count towards the gap).

    Returns
    -------
    float
        0 with fewer than two notes.
    """
    gaps = np.diff(_onsets(song))
    return float(gaps.mean() / song.steps_per_quarter) if len(gaps) else 0.0


def notes_per_bar(song: Song) -> float:
    """Mean number of note onsets per bar (see :func:`bar_note_counts`)."""
    counts = bar_note_counts(song)
    return float(counts.mean()) if len(counts) else 0.0


def rest_ratio(song: Song) -> float:
    """Share of the melody's time steps that are rests (0 for an empty melody)."""
    total = song.total_steps
    return float(sum(n.steps for n in song.notes if n.pitch is None) / total) if total else 0.0


def empty_bar_rate(song: Song) -> float:
    """Share of bars in which no note starts (held notes and rests fill them)."""
    counts = bar_note_counts(song)
    return float((counts == 0).mean()) if len(counts) else 0.0


# name → function, in report order; histogram features return arrays, the rest scalars.
FEATURES: dict[str, Callable[[Song], float | np.ndarray]] = {
    "pitch_count": pitch_count,
    "pitch_range": pitch_range,
    "pitch_class_histogram": pitch_class_histogram,
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "interval_histogram": interval_histogram,
    "mean_absolute_interval": mean_absolute_interval,
    "note_length_histogram": note_length_histogram,
    "inter_onset_interval": inter_onset_interval,
    "notes_per_bar": notes_per_bar,
    "rest_ratio": rest_ratio,
    "empty_bar_rate": empty_bar_rate,
}


def feature_table(songs: list[Song], structure: bool = True) -> dict[str, np.ndarray]:
    """Every feature of every song: name → array of shape (songs,) or (songs, bins).

    The note-level :data:`FEATURES` first, then (``structure=True``) the structure features of
    :data:`tunesmith.evaluate.structure.STRUCTURE_FEATURES` (repetition, self-similarity, endings).
    """
    from tunesmith.evaluate.structure import STRUCTURE_FEATURES

    functions = FEATURES | STRUCTURE_FEATURES if structure else FEATURES
    return {name: np.array([np.asarray(fn(song), dtype=float) for song in songs]) for name, fn in functions.items()}


def feature_matrix(table: dict[str, np.ndarray]) -> np.ndarray:
    """The feature table flattened to one row per song (histograms spread over their bins)."""
    columns = [values.reshape(len(values), -1) for values in table.values()]
    return np.concatenate(columns, axis=1) if columns else np.zeros((0, 0))
