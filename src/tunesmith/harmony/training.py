"""Learning the harmoniser from Nottingham records, and judging it on held-out tunes.

Tunes are split by normalised title (a stable hash, as for the melody corpus), so every version
of a tune lands on one side. ``beta`` and ``accent`` are chosen on a development part of the
training tunes; the held-out tunes are only used for the final figures.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from tunesmith.corpus.split import is_validation, normalise_title
from tunesmith.harmony.metrics import accuracy, chord_tone_ratio, most_notes_baseline, tonic_baseline
from tunesmith.harmony.model import (
    PERS,
    HarmonyConfig,
    HarmonyModel,
    Tables,
    asdict_config,
    count_transitions,
    fit_emission,  # fmt: skip
    fold,
)
from tunesmith.harmony.spans import Label, Passage, cut_spans, majority, span_features
from tunesmith.harmony.theory import beat_structure, parse_figure


def passages_of(record: dict[str, Any], per: str) -> list[Passage]:
    """A Nottingham record cut into passages at each key or meter change, with gold chords."""
    changes = sorted({k[0] for k in record["keys"]} | {m[0] for m in record["meters"]})
    keys, meters = sorted(record["keys"]), sorted(record["meters"])
    chords = []
    for offset, figure in sorted(record["chords"], key=lambda c: c[0]):
        parsed = parse_figure(figure)
        chords.append((offset, parsed))  # an unreadable figure (None) is an unknown chord there
    passages = []
    for index, begin in enumerate(changes):
        end = changes[index + 1] if index + 1 < len(changes) else float("inf")
        _, tonic, mode = _in_force(keys, begin)
        meter = _in_force(meters, begin)[1]
        try:
            beat_structure(meter)
        except ValueError:
            continue
        measures = [(s, n) for s, n in record["bars"] if begin - 1e-9 <= s < end - 1e-9]
        if not measures:
            continue
        spans = cut_spans(measures, meter, per)
        notes = [(o, n, (p - tonic) % 12) for o, n, p in record["notes"] if begin - 1e-9 <= o < end - 1e-9]
        timeline = [(o, None if c is None else ((c[0] - tonic) % 12, c[1])) for o, c in chords]
        timeline = [(float("-inf"), None)] + timeline
        gold = [majority(timeline, s, e) for s, e, _ in spans]
        if notes and any(g is not None for g in gold):
            passages.append(Passage(mode, meter, spans, notes, gold, f"{record['label']}@{begin:g}"))
    return passages


def _in_force(events: list[list[Any]], offset: float) -> list[Any]:
    """The last ``[offset, …]`` event at or before ``offset`` (the first one before any)."""
    earlier = [e for e in events if e[0] <= offset + 1e-9]
    return earlier[-1] if earlier else events[0]


def split_records(records: list[dict[str, Any]], config: HarmonyConfig) -> dict[str, list[dict[str, Any]]]:
    """``{"train": …, "dev": …, "test": …}`` by stable hash of the normalised title."""
    parts: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    for record in records:
        group = normalise_title(record["title"]) or record["label"]
        if is_validation(group, config.test_fraction, config.seed):
            parts["test"].append(record)
        elif is_validation(group, config.dev_fraction, config.seed + 1):
            parts["dev"].append(record)
        else:
            parts["train"].append(record)
    return parts


def choose_states(passages: list[Passage], min_count: int) -> list[Label]:
    """Chord functions seen at least ``min_count`` times, most frequent first (tonic guaranteed)."""
    counts: dict[Label, int] = {}
    for passage in passages:
        for label in passage.gold:
            if label is not None:
                counts[label] = counts.get(label, 0) + 1
    states = [label for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]
    return states


def fit(passages: dict[str, list[Passage]], features: dict[str, list[np.ndarray]], config: HarmonyConfig,
        accent: float, betas: dict[str, float]) -> HarmonyModel:  # fmt: skip
    """A model from annotated passages and their ``span_features``, both keyed by span size."""
    states, tables = {}, {}
    for mode in ("major", "minor"):
        chosen = choose_states([p for p in passages["half"] if p.mode == mode], config.min_count)
        if not chosen:
            continue
        states[mode], tables[mode] = chosen, {}
        index = {s: i for i, s in enumerate(chosen)}
        for per in PERS:
            rows, targets = [], []
            for passage, feats in zip(passages[per], features[per], strict=True):
                if passage.mode != mode:
                    continue
                for t, label in enumerate(passage.gold):
                    state = index.get(fold(label, index)) if label is not None else None
                    if state is not None:
                        rows.append(feats[t])
                        targets.append(state)
            weights, prior = fit_emission(np.array(rows), np.array(targets), len(chosen), config.l2)
            transition = count_transitions([p for p in passages[per] if p.mode == mode], chosen, config)
            tables[mode][per] = Tables(weights, prior, transition, betas[per])
    return HarmonyModel(states, tables, accent)


def evaluate(model: HarmonyModel, passages: list[Passage], per: str,
             features: list[np.ndarray] | None = None) -> dict[str, Any]:  # fmt: skip
    """Accuracy and chord-tone ratio of the model and both baselines on annotated passages."""
    features = features or [None] * len(passages)
    kept = [(p, f) for p, f in zip(passages, features, strict=True) if p.mode in model.states]
    passages = [p for p, _ in kept]
    gold = [p.gold for p in passages]
    rows = {"model": [model.decode(p, per, f) for p, f in kept], "tonic": [tonic_baseline(p) for p in passages],
            "most notes": [most_notes_baseline(p) for p in passages]}  # fmt: skip
    result: dict[str, Any] = {name: accuracy(labels, gold) | {"chord_tones": chord_tone_ratio(passages, labels)}
                              for name, labels in rows.items()}  # fmt: skip
    result["annotated"] = {"chord_tones": chord_tone_ratio(passages, gold)}
    result["passages"] = len(passages)
    return result


def dev_exact(model: HarmonyModel, passages: list[Passage], features: list[np.ndarray], per: str) -> float:
    """Exact accuracy of the model alone (the settings search's score)."""
    kept = [(p, f) for p, f in zip(passages, features, strict=True) if p.mode in model.states]
    return accuracy([model.decode(p, per, f) for p, f in kept], [p.gold for p, _ in kept])["exact"]


def default_pers(records: list[dict[str, Any]], config: HarmonyConfig) -> dict[str, str]:
    """Half-bar chords for the meters whose tunes change chord inside a full bar often enough."""
    changes: dict[str, list[int]] = {}
    for record in records:
        for passage in passages_of(record, "half"):
            tally = changes.setdefault(passage.meter, [0, 0])
            for t in range(len(passage.spans) - 1):
                if passage.spans[t][2] and not passage.spans[t + 1][2] and passage.gold[t] is not None:
                    tally[0] += passage.gold[t] != passage.gold[t + 1]
                    tally[1] += 1
    return {m: "half" if n and c / n >= config.half_share else "bar" for m, (c, n) in sorted(changes.items())}


def train(records: list[dict[str, Any]], config: HarmonyConfig | None = None,
          progress: bool = False) -> tuple[HarmonyModel, dict[str, Any]]:  # fmt: skip
    """Choose settings on dev tunes, fit on train + dev, report figures on the held-out test tunes."""
    config = (config or HarmonyConfig()).validate()
    began = time.perf_counter()
    parts = split_records(records, config)
    cut = {name: {per: [p for r in part for p in passages_of(r, per)] for per in PERS} for name, part in parts.items()}
    best: dict[str, tuple[float, float, float]] = {}
    cached: dict[float, dict[str, dict[str, list[np.ndarray]]]] = {}
    for accent in config.accents:
        feats = {name: {per: [span_features(p, accent) for p in cut[name][per]] for per in PERS} for name in ("train", "dev")}
        cached[accent] = feats
        model = fit(cut["train"], feats["train"], config, accent, {per: 1.0 for per in PERS})
        for beta in config.betas:
            for per in PERS:
                for tables in model.tables.values():
                    tables[per].beta = beta
                score = dev_exact(model, cut["dev"][per], feats["dev"][per], per)
                if progress:
                    print(f"  dev  accent {accent:<4} beta {beta:<5} {per:<4} exact {score:.3f}")
                if per not in best or score > best[per][0]:
                    best[per] = (score, accent, beta)
    accent = best["half"][1]  # one accent (the features are shared); each span size keeps its own beta
    betas = {per: best[per][2] for per in PERS}
    training = {per: cut["train"][per] + cut["dev"][per] for per in PERS}
    features = {per: cached[accent]["train"][per] + cached[accent]["dev"][per] for per in PERS}
    model = fit(training, features, config, accent, betas)
    model.default_per = default_pers(parts["train"] + parts["dev"], config)
    seconds = time.perf_counter() - began
    figures = {per: evaluate(model, cut["test"][per], per) for per in PERS}
    model.info = {
        "trained_on": "Nottingham Music Database (jukedeck/nottingham-dataset)",
        "tunes": {name: len(part) for name, part in parts.items()},
        "config": asdict_config(replace(config, data="", cache_dir="")),
        "chosen": {"accent": accent, "beta": betas, "dev_exact": {per: round(best[per][0], 4) for per in PERS}},
        "test": figures, "seconds": round(seconds, 1),
    }  # fmt: skip
    return model, figures
