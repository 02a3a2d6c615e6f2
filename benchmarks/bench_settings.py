"""The classifier and the rhythm/interval giveaways for several generation settings, on the calibration songs.

A quick screen before ``bench_structure.py``: for each named set of generation settings (JSON,
fields of :class:`tunesmith.generate.GenerationConfig`), one melody per calibration song (a fixed
fifth of the model's *training* songs of ``corpus.sources``; ``--half`` picks another set), in its
mode, meter and length, seeds as given; then the forest's accuracy (5 folds, structure features)
and the means of the columns that gave the melodies away in ``bench_structure.py``'s giveaway
table (unisons, quarter notes, notes per bar, tonic pitch class, mean interval, repetition, tonic
endings). ``--hold-bias X`` adds X to the output layer's bias of the hold token first (an
experiment: fewer or more held steps everywhere, without a new model). Run::

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/erk.pt")
    parser.add_argument("--settings", default='{"default": {}}', help="JSON: name → generation settings")
    parser.add_argument("--seed", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--half", default="calib", choices=["calib", "dev", "test", "all"])
    parser.add_argument("--hold-bias", type=float, default=0.0)
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
            songs = [m.song for m in generate_melody_set(generator, real, len(real), 0, seed, False, settings=settings)]
            table = feature_table(songs)
            accuracies.append(discriminate(real_table, table, ClassifierConfig(seed=seed))["accuracy"])
            means.append(giveaway_means(table, songs))
        mean = {key: round(float(np.mean([m[key] for m in means])), 3) for key in means[0]}
        print(f"{name}: classifier {np.mean(accuracies):.1%} (seeds {', '.join(f'{a:.1%}' for a in accuracies)}) "
              f"{mean}  {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
