"""The classifier and the rhythm/interval giveaways for several generation settings, on the calibration songs.

A quick screen before ``bench_structure.py``: for each named set of generation settings (JSON,
fields of :class:`tunesmith.generate.GenerationConfig`), one melody per calibration song (a fixed
fifth of the model's *training* songs of ``corpus.sources``; ``--half`` picks another set), in its
mode, meter and length, seeds as given; then the forest's accuracy (5 folds, structure features)
and the means of the columns that gave the melodies away in ``bench_structure.py``'s giveaway
table (unisons, quarter notes, notes per bar, tonic pitch class, mean interval, repetition, tonic
endings). ``--hold-bias X`` adds X to the output layer's bias of the hold token first (an
experiment: fewer or more held steps everywhere, without a new model). ``--groups`` also prints
which melodies give themselves away: the share of generated melodies the forest calls generated
(out of fold) by meter, length, phrases and distinct letters of the drawn form; the notes per
phrase of real and generated songs by meter and phrase length; and the repetition of real and
generated songs with as many distinct letters. Run::

    .venv/bin/python benchmarks/bench_settings.py --model models/erk.pt \\
        --settings '{"default": {}, "t0.95": {"temperature": 0.95}}' --seed 0 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def giveaway_means(table: dict, songs: list) -> dict[str, float]:
    """Means over a set of the feature columns that told generated melodies from real ones."""
    from tunesmith.evaluate.structure import structure_summary

    summary = structure_summary(songs)
    return {"unisons": float(np.mean(table["interval_histogram"][:, 12])),
            "quarter notes": float(np.mean(table["note_length_histogram"][:, 3])),
            "notes per bar": float(np.mean(table["notes_per_bar"])),
            "tonic pitch class": float(np.mean(table["pitch_class_histogram"][:, 0])),
            "mean interval": float(np.mean(table["mean_absolute_interval"])),
            "repetition": float(summary["repetition"]), "tonic endings": float(summary["tonic_endings"])}  # fmt: skip


def letters(labels: list[str]) -> int:
    """Distinct letters of a form ("A A' B A" → 2)."""
    return len({label.rstrip("'") for label in labels})


def notes_per_phrase(songs: list) -> dict[tuple[str, float], list[int]]:
    """Notes (onsets of pitches) in each phrase, by meter and the phrase's length in bars (to the half bar)."""
    from collections import defaultdict

    from tunesmith.song import bar_steps

    counts: dict[tuple[str, float], list[int]] = defaultdict(list)
    for song in songs:
        bar = bar_steps(song.meter, song.steps_per_quarter)
        onsets, step = [], 0
        for note in song.notes:
            if note.pitch is not None:
                onsets.append(step)
            step += note.steps
        bounds = [*song.phrase_starts, step]
        for start, end in zip(bounds, bounds[1:]):
            counts[song.meter, round((end - start) / bar * 2) / 2].append(sum(start <= t < end for t in onsets))
    return counts


def print_groups(real: list, real_table: dict, melodies: list, table: dict, seed: int) -> None:
    """Out-of-fold share of generated melodies called generated, by kind ("bars 8": 8–15 bars;
    phrases and letters counted up to 8 and 6); notes per phrase and repetition, real and generated."""
    from collections import defaultdict

    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from tunesmith.evaluate.classifier import ClassifierConfig, _estimator
    from tunesmith.evaluate.metrics import feature_matrix
    from tunesmith.evaluate.structure import structure_summary
    from tunesmith.form.inputs import song_form

    x_real, x_gen = feature_matrix(real_table), feature_matrix(table)
    x = np.concatenate([x_real, x_gen])
    y = np.r_[np.zeros(len(x_real), int), np.ones(len(x_gen), int)]
    splitter = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    called = cross_val_predict(_estimator(ClassifierConfig(seed=seed)), x, y, cv=splitter)[len(x_real) :]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for melody, verdict in zip(melodies, called):
        song = melody.song
        form = [label.rstrip("0123456789") for label in str(melody.params.get("form") or "").split()]
        for key in (("meter", song.meter), ("bars", min(len(song.bar_starts) // 8 * 8, 32)),
                    ("phrases", min(len(song.phrase_starts), 8)), ("letters", min(letters(form), 6))):  # fmt: skip
            groups[key].append(int(verdict))
    print(f"  seed {seed}: generated melodies called generated (out of fold), by kind:", flush=True)
    for key in sorted(groups, key=str):
        print(f"    {key[0]} {key[1]}: {np.mean(groups[key]):.0%} of {len(groups[key])}")
    by_real: dict[int, list] = defaultdict(list)
    by_gen: dict[int, list] = defaultdict(list)
    for song in real:
        by_real[min(letters(song_form(song)[1]), 6)].append(song)
    for melody in melodies:
        form = [label.rstrip("0123456789") for label in str(melody.params.get("form") or "").split()]
        by_gen[min(letters(form), 6)].append(melody.song)
    real_counts, gen_counts = notes_per_phrase(real), notes_per_phrase([m.song for m in melodies])
    print("    notes per phrase by meter and phrase bars (real / generated, phrases):", "; ".join(
        f"{meter} {bars:g}: {np.mean(real_counts[meter, bars]):.1f} / {np.mean(gen_counts[meter, bars]):.1f} "
        f"({len(real_counts[meter, bars])} / {len(gen_counts[meter, bars])})"
        for meter, bars in sorted(real_counts) if len(real_counts[meter, bars]) >= 15 and len(gen_counts[meter, bars]) >= 8))  # fmt: skip
    print("    repetition by distinct letters (real / generated, songs):", "; ".join(
        f"{n}: {structure_summary(by_real[n])['repetition']:.3f} / {structure_summary(by_gen[n])['repetition']:.3f} "
        f"({len(by_real[n])} / {len(by_gen[n])})" for n in sorted(set(by_real) & set(by_gen))), flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/erk.pt")
    parser.add_argument("--settings", default='{"default": {}}', help="JSON: name → generation settings")
    parser.add_argument("--seed", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--half", default="calib", choices=["calib", "dev", "test", "all"])
    parser.add_argument("--hold-bias", type=float, default=0.0)
    parser.add_argument("--groups", action="store_true", help="also: detection and repetition by kind of melody")
    args = parser.parse_args()

    import torch

    from tunesmith.checkpoint import Checkpoint
    from tunesmith.config import Config
    from tunesmith.corpus import prepare
    from tunesmith.evaluate.classifier import ClassifierConfig, discriminate
    from tunesmith.evaluate.metrics import feature_table
    from tunesmith.evaluate.pipeline import generate_melody_set, select_half
    from tunesmith.generate import Generator

    torch.set_num_threads(1)
    generator = Generator.from_checkpoint(args.model, "cpu")
    if args.hold_bias:
        with torch.no_grad():
            generator.model.head.bias[generator.model.hold_id] += args.hold_bias
    config = Config.from_dict(Checkpoint.load(args.model).to_dict()["config"])
    dataset = prepare(config.corpus, config.encoding, progress=False)
    pool = [e for e in dataset.split("train") if not e.extra] if args.half == "calib" else dataset.split("val")
    real = [e.song for e in select_half(pool, args.half)]
    real_table = feature_table(real)
    shown = {name: round(value, 3) for name, value in giveaway_means(real_table, real).items()}
    print(f"{args.model}, {args.half} songs ({len(real)}), hold bias {args.hold_bias:+g}: real {shown}", flush=True)
    for name, settings in json.loads(args.settings).items():
        started, accuracies, means = time.perf_counter(), [], []
        for seed in args.seed:
            melodies = generate_melody_set(generator, real, len(real), 0, seed, False, settings=settings)
            songs = [m.song for m in melodies]
            table = feature_table(songs)
            accuracies.append(discriminate(real_table, table, ClassifierConfig(seed=seed))["accuracy"])
            means.append(giveaway_means(table, songs))
            if args.groups:
                print_groups(real, real_table, melodies, table, seed)
        mean = {key: round(float(np.mean([m[key] for m in means])), 3) for key in means[0]}
        print(f"{name}: classifier {np.mean(accuracies):.1%} (seeds {', '.join(f'{a:.1%}' for a in accuracies)}) "
              f"{mean}  {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
