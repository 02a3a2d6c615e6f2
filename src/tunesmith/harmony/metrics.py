"""How good a harmonisation is: accuracy against annotations, chord tones, and two baselines.

Pure functions over passages (spans with melody notes) and one label per span.
"""

from __future__ import annotations

import numpy as np

from tunesmith.harmony.spans import Label, Passage, notes_by_span, span_weights
from tunesmith.harmony.theory import chord_tones

# Diatonic triads the "most melody notes" baseline chooses from, in order of preference on a tie.
CANDIDATES = {
    "major": [(0, "maj"), (7, "maj"), (5, "maj"), (9, "min"), (2, "min"), (4, "min")],
    "minor": [(0, "min"), (7, "maj"), (5, "min"), (10, "maj"), (3, "maj"), (8, "maj"), (7, "min")],
}


def accuracy(predicted: list[list[Label]], gold: list[list[Label | None]]) -> dict[str, float]:
    """Share of annotated spans whose chord matches exactly (root and quality) and by root alone.

    Spans without an annotation (before the first chord symbol) are left out.
    """
    exact = root = total = 0
    for pred_seq, gold_seq in zip(predicted, gold, strict=True):
        for pred, truth in zip(pred_seq, gold_seq, strict=True):
            if truth is None:
                continue
            total += 1
            exact += pred == truth
            root += pred[0] == truth[0]
    return {"exact": exact / total if total else 0.0, "root": root / total if total else 0.0, "spans": total}


def chord_tone_ratio(passages: list[Passage], labels: list[list[Label | None]]) -> float:
    """Share of melody notes that are tones of the chord sounding where they start.

    Notes in spans without a chord are left out.
    """
    hits = total = 0
    for passage, seq in zip(passages, labels, strict=True):
        for (_, _, pc), span in zip(passage.notes, notes_by_span(passage), strict=True):
            if span < 0 or seq[span] is None:
                continue
            total += 1
            hits += pc % 12 in chord_tones(*seq[span])
    return hits / total if total else 0.0


def tonic_baseline(passage: Passage) -> list[Label]:
    """Always the tonic triad."""
    return [(0, "maj" if passage.mode == "major" else "min")] * len(passage.spans)


def most_notes_baseline(passage: Passage) -> list[Label]:
    """In each span, the diatonic triad holding the most melody (duration-weighted), ties to I, V, IV…"""
    weights = span_weights(passage, 1.0)
    candidates = CANDIDATES[passage.mode]
    member = np.array([[pc in chord_tones(*c) for pc in range(12)] for c in candidates], float)
    scores = weights @ member.T  # [T, C]
    return [candidates[int(np.argmax(row))] for row in scores]  # argmax keeps the first on a tie


def function_shares(labels: list[list[Label | None]], mode_of: list[str]) -> dict[str, float]:
    """Share of spans on the tonic, dominant (V, V7) and subdominant (IV, iv) roots."""
    counts = {"tonic": 0, "dominant": 0, "subdominant": 0, "other": 0}
    for seq, _ in zip(labels, mode_of, strict=True):
        for label in seq:
            if label is None:
                continue
            name = {0: "tonic", 7: "dominant", 5: "subdominant"}.get(label[0], "other")
            counts[name] += 1
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.items()}
