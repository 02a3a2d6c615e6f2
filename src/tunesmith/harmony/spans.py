"""Melodies cut into harmonic spans (a bar or half a bar) and the weighted notes in each.

Everything here works in quarter notes and pitch classes relative to the tonic, so Nottingham
tunes and tunesmith Songs go through the same code. Pure functions on plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tunesmith.harmony.theory import beat_structure, half_point

PERS = ("bar", "half")
Label = tuple[int, str]  # (degree above the tonic, quality)


@dataclass
class Passage:
    """A stretch of melody in one key and meter, cut into spans.

    ``spans`` are ``(start, end, starts_bar)`` in quarters; ``notes`` ``(onset, length, pc)``
    with ``pc`` relative to the tonic; ``gold`` the annotated chord of each span (corpus only).
    """

    mode: str
    meter: str
    spans: list[tuple[float, float, bool]]
    notes: list[tuple[float, float, int]]
    gold: list[Label | None] = field(default_factory=list)
    name: str = ""


def bar_length(meter: str) -> float:
    """Quarters in a full bar of ``meter``."""
    beat, beats = beat_structure(meter)
    return beat * beats


def cut_spans(measures: list[tuple[float, float]], meter: str, per: str) -> list[tuple[float, float, bool]]:
    """Spans of a list of ``(start, length)`` measures: one per measure, or split at the half bar.

    A first measure shorter than a bar is a pickup: it gets no span (an anacrusis is played
    without a chord, as in the Nottingham tunes). Any other measure is split at the half point
    when it reaches past it.
    """
    if per not in PERS:
        raise ValueError(f"unknown span {per!r}; known: {', '.join(PERS)}")
    full, half = bar_length(meter), half_point(meter)
    spans = []
    for index, (start, length) in enumerate(measures):
        if length <= 0:
            continue
        if index == 0 and length < full - 1e-6 and len(measures) > 1:
            continue
        if per == "half" and length > half + 1e-6:
            spans += [(start, start + half, True), (start + half, start + length, False)]
        else:
            spans.append((start, start + length, True))
    return spans


def span_weights(passage: Passage, accent: float) -> np.ndarray:
    """``[spans, 12]`` melody weight of each pitch class in each span.

    A note counts for the beats it sounds inside the span, times ``accent`` when it starts on a
    beat and ``accent²`` when it starts the span: strong notes are the chord's likeliest tones.
    """
    beat, _ = beat_structure(passage.meter)
    weights = np.zeros((len(passage.spans), 12))
    starts = np.array([s[0] for s in passage.spans])
    bar_origin = next((s[0] for s in passage.spans if s[2]), 0.0)
    for onset, length, pc in passage.notes:
        end = onset + length
        first = max(int(np.searchsorted(starts, onset, side="right")) - 1, 0)
        for index in range(first, len(passage.spans)):
            lo, hi, _ = passage.spans[index]
            if lo >= end:
                break
            overlap = min(hi, end) - max(lo, onset)
            if overlap <= 0:
                continue
            factor = 1.0
            if lo <= onset < hi:
                if abs(onset - lo) < 1e-6:
                    factor = accent * accent
                elif abs(((onset - bar_origin) / beat) - round((onset - bar_origin) / beat)) < 1e-6:
                    factor = accent
            weights[index, pc % 12] += overlap / beat * factor
    return weights


def notes_by_span(passage: Passage) -> list[int]:
    """Index of the span in which each note starts (−1 outside every span)."""
    starts = [s[0] for s in passage.spans]
    result = []
    for onset, _, _ in passage.notes:
        index = int(np.searchsorted(starts, onset + 1e-9, side="right")) - 1
        inside = index >= 0 and onset < passage.spans[index][1] - 1e-9
        result.append(index if inside else -1)
    return result


def majority(timeline: list[tuple[float, Label | None]], start: float, end: float) -> Label | None:
    """The label sounding longest in ``[start, end)`` of a ``(from, label)`` timeline (sorted)."""
    totals: dict[Label | None, float] = {}
    for index, (begin, label) in enumerate(timeline):
        stop = timeline[index + 1][0] if index + 1 < len(timeline) else float("inf")
        overlap = min(stop, end) - max(begin, start)
        if overlap > 1e-9:
            totals[label] = totals.get(label, 0.0) + overlap
    if not totals:
        return None
    return max(totals.items(), key=lambda kv: kv[1])[0]


FEATURES = 36  # profile (12) + pitch class at the span's start (12) + at its end (12)


def span_features(passage: Passage, accent: float) -> np.ndarray:
    """``[spans, 36]`` what the harmoniser sees of each span.

    The melody's pitch-class profile (``span_weights`` scaled to sum to 1), and one-hots of the
    pitch class sounding as the span begins and as it ends (zeros over a rest).
    """
    weights = span_weights(passage, accent)
    total = weights.sum(axis=1, keepdims=True)
    profile = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    edges = np.zeros((len(passage.spans), 24))
    onsets = np.array([n[0] for n in passage.notes]) if passage.notes else np.zeros(0)
    for index, (start, end, _) in enumerate(passage.spans):
        for column, moment in ((0, start + 1e-6), (12, end - 1e-6)):
            note = int(np.searchsorted(onsets, moment, side="right")) - 1
            if note >= 0 and passage.notes[note][0] + passage.notes[note][1] > moment:
                edges[index, column + passage.notes[note][2] % 12] = 1.0
    return np.concatenate([profile, edges], axis=1)
