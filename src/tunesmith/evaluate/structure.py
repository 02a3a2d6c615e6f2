"""Structure of a melody: does it restate itself, and how does it close?

Pure functions over :class:`~tunesmith.song.Song`, built on :mod:`tunesmith.form` (phrases,
similarity, repetition and compliance are defined there and only there). A song's phrases are
its recorded ``phrase_starts`` (the editors' marks of a real song; the plan of a form-aware
generator) or, when it has none, the form module's rule (:func:`tunesmith.form.song_phrases`).

Per-song features (:data:`STRUCTURE_FEATURES`, read by the Yang & Lerch comparison and the
classifier beside :data:`tunesmith.evaluate.metrics.FEATURES`):

``repetition``
    share of 4-note patterns (intervals and lengths) that repeat an earlier one in the song;
``phrase_similarity``
    mean over phrases after the first of the best similarity (1 − the form module's edit
    distance) to an earlier phrase;
``bar_similarity``
    mean off-diagonal value of the bars × bars self-similarity matrix;
``tonic_ending``
    1 when the last sounding note is the tonic (scale degree 1), else 0;
``final_note_length``
    the last sounding note's length in quarters;
``phrase_final_degrees``
    share of phrase endings (all phrases but the last) on degrees 1–7 and elsewhere.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable

import numpy as np

from tunesmith.form import compliance, repetition, song_phrases
from tunesmith.form.labels import distance_matrix, phrase_items
from tunesmith.meter import song_bar_starts
from tunesmith.song import Song

DEGREE_BINS = ("1", "2", "3", "4", "5", "6", "7", "other")  # phrase-final degree histogram bins


def repetition_share(song: Song) -> float:
    """Share of the song's 4-note patterns repeating an earlier one (:func:`tunesmith.form.repetition`)."""
    return float(repetition(song))


def phrase_similarity(song: Song) -> float:
    """Phrase-level self-similarity: mean over phrases 2..n of max over earlier phrases of
    ``1 − distance`` (the form module's normalised edit distance of ``(pitch, steps)`` sequences).

    Returns
    -------
    float
        In [0, 1]: 1 when every phrase restates an earlier one exactly, near 0 for phrases with
        nothing in common; 0.0 for a song of one phrase.
    """
    phrases = song_phrases(song)
    items = [phrase_items(song, p) for p in phrases]
    similar = 1.0 - distance_matrix(items)
    best = [float(similar[i, :i].max()) for i in range(1, len(items))]
    return float(np.mean(best)) if best else 0.0


def bar_items(song: Song) -> list[list[tuple[int | None, int]]]:
    """Each bar's notes as ``(pitch above the bar's first sounding note, steps)`` pairs.

    Bars run from one bar line to the next (:func:`tunesmith.meter.song_bar_starts`); a note
    belongs to the bar it starts in, a pickup before the first bar line
    to no bar. The pairs are those of the form module's phrase similarity, per bar.
    """
    starts = song_bar_starts(song) if song.notes else []
    bars: list[list[tuple[int | None, int]]] = [[] for _ in starts]
    firsts: list[int | None] = [None] * len(starts)
    step = 0
    for note in song.notes:
        index = bisect.bisect_right(starts, step) - 1  # the last bar line at or before the onset
        if index >= 0:
            if note.pitch is None:
                bars[index].append((None, note.steps))
            else:
                firsts[index] = note.pitch if firsts[index] is None else firsts[index]
                bars[index].append((note.pitch - firsts[index], note.steps))
        step += note.steps
    return bars


def self_similarity_matrix(song: Song) -> np.ndarray:
    """Bars × bars self-similarity: ``1 − distance`` of each pair of bars' ``(interval, steps)`` items.

    Returns
    -------
    ndarray of float, shape (bars, bars)
        Symmetric, 1 on the diagonal; a repeated phrase shows as a bright diagonal stripe off
        the main one. Empty for a song with no bars.
    """
    bars = bar_items(song)
    distinct: dict[tuple, int] = {}  # songs restate bars: each distinct bar is compared once
    which = np.array([distinct.setdefault(tuple(bar), len(distinct)) for bar in bars], dtype=np.int64)
    matrix = 1.0 - distance_matrix([list(bar) for bar in distinct])
    return matrix[which[:, None], which[None, :]]


def bar_similarity(song: Song) -> float:
    """Mean off-diagonal value of :func:`self_similarity_matrix` (0.0 for fewer than two bars)."""
    matrix = self_similarity_matrix(song)
    if len(matrix) < 2:
        return 0.0
    return float((matrix.sum() - len(matrix)) / (len(matrix) * (len(matrix) - 1)))


def final_degree(song: Song) -> str:
    """Scale degree ("1", "5", "b7"…) of the last sounding note; "" for a song without notes."""
    phrases = song_phrases(song)
    for phrase in reversed(phrases):
        if phrase.final_degree:
            return phrase.final_degree
    return ""


def tonic_ending(song: Song) -> float:
    """1.0 when the last sounding note is the tonic (degree 1 of the song's mode), else 0.0."""
    return float(final_degree(song) == "1")


def final_note_length(song: Song) -> float:
    """Length of the last sounding note, in quarters (0.0 for a song without notes)."""
    pitched = [n for n in song.notes if n.pitch is not None]
    return pitched[-1].steps / song.steps_per_quarter if pitched else 0.0


def phrase_final_degrees(song: Song) -> np.ndarray:
    """Share of phrase endings (every phrase but the last) on each of :data:`DEGREE_BINS`.

    Returns
    -------
    ndarray of float, shape (8,)
        Degrees 1–7 of the mode, then any chromatic degree; sums to 1, or all zeros for a song
        of one phrase.
    """
    counts = np.zeros(len(DEGREE_BINS))
    for phrase in song_phrases(song)[:-1]:
        if phrase.final_degree:
            degree = phrase.final_degree if phrase.final_degree in DEGREE_BINS else "other"
            counts[DEGREE_BINS.index(degree)] += 1
    return counts / counts.sum() if counts.sum() else counts


# name → function, in report order (the histogram last, as in metrics.FEATURES).
STRUCTURE_FEATURES: dict[str, Callable[[Song], float | np.ndarray]] = {
    "repetition": repetition_share,
    "phrase_similarity": phrase_similarity,
    "bar_similarity": bar_similarity,
    "tonic_ending": tonic_ending,
    "final_note_length": final_note_length,
    "phrase_final_degrees": phrase_final_degrees,
}


def compliance_rate(songs: list[Song], forms: list[str | None]) -> dict | None:
    """How often the requested forms are honoured (:func:`tunesmith.form.compliance`).

    Parameters
    ----------
    songs : list of Song
        Generated melodies (their phrases as the generator recorded them).
    forms : list of str or None
        The form each melody was asked for (``melody.params["form"]``); None or "" = no request.

    Returns
    -------
    dict or None
        ``requested`` (melodies with a form), ``honoured`` (share meeting their form in full),
        ``pair_score`` (mean share of phrase pairs behaving as asked) and ``forms`` (requests
        counted); None when no melody asked for a form.
    """
    asked = [(song, form) for song, form in zip(songs, forms) if form]
    if not asked:
        return None
    results = [compliance(song, form) for song, form in asked]
    return {
        "requested": len(asked),
        "honoured": float(np.mean([r.ok for r in results])),
        "pair_score": float(np.mean([r.score for r in results])),
        "forms": dict(Counter(str(form) for _, form in asked).most_common()),
    }


def structure_summary(songs: list[Song], forms: list[str | None] | None = None) -> dict:
    """The set-level structure figures of issue 10 for one set of melodies (plain JSON types).

    Returns
    -------
    dict
        ``songs``; means of ``repetition``, ``phrase_similarity``, ``bar_similarity``;
        ``tonic_endings`` (share); ``final_note_length`` (mean quarters) and its ``median``;
        ``phrases_per_song`` (mean); ``phrase_final_degrees`` (share of phrase endings per
        degree, pooled over songs); ``song_final_degrees`` (share of songs per final degree);
        ``compliance`` (:func:`compliance_rate`, None without requested forms).
    """
    finals, song_finals, phrases = Counter(), Counter(), []
    for song in songs:
        found = song_phrases(song)
        phrases.append(len(found))
        finals.update(p.final_degree if p.final_degree in DEGREE_BINS else "other"
                      for p in found[:-1] if p.final_degree)  # fmt: skip
        song_finals[final_degree(song) or "none"] += 1
    lengths = [final_note_length(s) for s in songs]

    def shares(counter: Counter) -> dict:
        total = sum(counter.values()) or 1
        return {k: round(v / total, 4) for k, v in counter.most_common()}

    def mean(fn) -> float:
        return float(np.mean([fn(s) for s in songs])) if songs else 0.0

    return {
        "songs": len(songs),
        "repetition": mean(repetition_share),
        "phrase_similarity": mean(phrase_similarity),
        "bar_similarity": mean(bar_similarity),
        "tonic_endings": mean(tonic_ending),
        "final_note_length": float(np.mean(lengths)) if lengths else 0.0,
        "final_note_length_median": float(np.median(lengths)) if lengths else 0.0,
        "phrases_per_song": float(np.mean(phrases)) if phrases else 0.0,
        "phrase_final_degrees": shares(finals),
        "song_final_degrees": shares(song_finals),
        "compliance": compliance_rate(songs, forms or [None] * len(songs)),
    }
