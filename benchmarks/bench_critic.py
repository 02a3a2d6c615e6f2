"""Which critic, and how many candidates: the classifier's accuracy on the calibration songs.

The screen that chose the critic (``benchmarks/results/critic.md``). Critic training data as
``tunesmith critic`` fits it: one melody of the model (one candidate) in the shape of each
training song outside the calibration fifth, against those songs. Then, for each seed, ``--k``
candidates of one melody per calibration song (candidate k of melody i: seed
``candidate_seed(seed * SEED_STRIDE + i, k)``, as generation draws them), and for each critic
variant and selection rule the evaluation's forest (5 folds, structure features) and its
logistic regression tell the selected melodies from the calibration songs. No validation song
is read. Rules: ``argmax`` keeps the candidate the critic scores highest (what generation does);
``sir`` draws one with probability proportional to the critic's odds p / (1 - p) (sampling
importance resampling, which would correct the distribution rather than pick its most song-like
part). Run::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_critic.py --model models/erk.pt --k 4 --seed 0 1 2 3

``--cross-check`` instead measures, once the settings are fixed, the validation songs with
three learners fitted anew by cross-validation (the evaluation's forest, its logistic
regression, gradient boosting), one candidate against the default two: does the critic fool
only a forest like itself? ::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_critic.py --model models/erk.pt --cross-check --seed 0 1 2
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np


def candidate_sets(generator, real: list, seed: int, k: int) -> list[dict]:
    """Feature tables of ``k`` candidate sets: set ``c`` holds candidate ``c`` of each melody."""
    from tunesmith.evaluate.metrics import feature_table
    from tunesmith.evaluate.pipeline import SEED_STRIDE, _allocate, _lengths
    from tunesmith.generate import GenerationConfig
    from tunesmith.generate.batch import candidate_seed

    rng, requests = random.Random(seed), []
    for mode, meter, count in _allocate(real, len(real), generator.meters):  # as generate_melody_set draws them
        requests += [(mode, meter, length) for length in sorted(_lengths(real, mode, meter, count, rng))]
    tables = []
    for c in range(k):
        configs = [GenerationConfig(bars=length, mode=mode, meter=meter, candidates=1,
                                    seed=candidate_seed(seed * SEED_STRIDE + i, c))
                   for i, (mode, meter, length) in enumerate(requests)]  # fmt: skip
        tables.append(feature_table([m.song for r in generator.generate_batch(configs) for m in r]))
    return tables


def select(tables: list[dict], scores: np.ndarray | None, rule: str, rng: np.random.Generator) -> dict:
    """One candidate per melody by ``rule`` (scores [melodies, candidates]; None: the first)."""
    n = len(next(iter(tables[0].values())))
    if scores is None:
        index = np.zeros(n, dtype=int)
    elif rule == "argmax":
        index = scores.argmax(axis=1)
    else:
        odds = scores.clip(1e-3, 1 - 1e-3) / (1 - scores.clip(1e-3, 1 - 1e-3))
        index = np.array([rng.choice(len(tables), p=row / row.sum()) for row in odds])
    return {name: np.stack([tables[index[i]][name][i] for i in range(n)]) for name in tables[0]}


def cross_check(model: str, seeds: list[int]) -> None:
    """The validation songs against one candidate and against two, by three learners."""
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from tunesmith.checkpoint import Checkpoint
    from tunesmith.config import Config
    from tunesmith.corpus import prepare
    from tunesmith.evaluate.classifier import ClassifierConfig, discriminate
    from tunesmith.evaluate.metrics import feature_matrix, feature_table
    from tunesmith.evaluate.pipeline import generate_melody_set
    from tunesmith.generate import Generator

    torch.set_num_threads(1)
    generator = Generator.from_checkpoint(model, "cpu")
    config = Config.from_dict(Checkpoint.load(model).to_dict()["config"])
    real = [e.song for e in prepare(config.corpus, config.encoding, progress=False).split("val")]
    real_table = feature_table(real)

    def boosting(generated: dict, seed: int) -> float:
        a, b = feature_matrix(real_table), feature_matrix(generated)
        matrix, labels = np.vstack([a, b]), np.r_[np.ones(len(a)), np.zeros(len(b))]
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        return float(cross_val_score(HistGradientBoostingClassifier(random_state=seed), matrix, labels, cv=folds).mean())

    print(f"{model}: {len(real)} validation songs, seeds {seeds}")
    print("| candidates | forest (evaluation) | logistic regression | gradient boosting |")
    print("|---:|---:|---:|---:|")
    for candidates in (1, 2):
        rows = []
        for seed in seeds:
            melodies = generate_melody_set(generator, real, len(real), 0, seed, False, settings={"candidates": candidates})
            table = feature_table([m.song for m in melodies])
            rows.append((discriminate(real_table, table, ClassifierConfig(seed=seed))["accuracy"],
                         discriminate(real_table, table, ClassifierConfig(seed=seed, kind="logistic"))["accuracy"],
                         boosting(table, seed)))  # fmt: skip
        cells = [f"{np.mean(column):.1%} ({', '.join(f'{x:.1%}' for x in column)})" for column in zip(*rows)]
        print(f"| {candidates} | " + " | ".join(cells) + " |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/erk.pt")
    parser.add_argument("--k", type=int, default=4, help="candidates per melody (subsets 1..k are scored)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--cross-check", action="store_true", help="the validation songs by three learners instead")
    args = parser.parse_args()
    if args.cross_check:
        cross_check(args.model, args.seed)
        return 0

    import torch
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tunesmith.checkpoint import Checkpoint
    from tunesmith.config import Config
    from tunesmith.corpus import prepare
    from tunesmith.critic import training_songs
    from tunesmith.evaluate.classifier import ClassifierConfig, discriminate
    from tunesmith.evaluate.metrics import feature_matrix, feature_table
    from tunesmith.evaluate.pipeline import generate_melody_set, select_half
    from tunesmith.generate import Generator

    torch.set_num_threads(1)
    started = time.perf_counter()
    generator = Generator.from_checkpoint(args.model, "cpu")
    checkpoint = Checkpoint.load(args.model)
    config = Config.from_dict(checkpoint.to_dict()["config"])
    dataset = prepare(config.corpus, config.encoding, progress=False)
    calib = [e.song for e in select_half([e for e in dataset.split("train") if not e.extra], "calib")]
    songs = training_songs(checkpoint)
    melodies = generate_melody_set(generator, songs, len(songs), 0, 0, False, settings={"candidates": 1})
    real, fake = feature_matrix(feature_table(songs)), feature_matrix(feature_table([m.song for m in melodies]))
    matrix, labels = np.vstack([real, fake]), np.r_[np.ones(len(real)), np.zeros(len(fake))]
    calib_table = feature_table(calib)
    sets = {seed: candidate_sets(generator, calib, seed, args.k) for seed in args.seed}
    print(f"{args.model}: critic data {len(songs)} songs + {len(melodies)} melodies, {len(calib)} calibration songs, "
          f"{args.k} candidates, seeds {args.seed}; {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    critics = {
        "forest 100 trees, leaf 5 (shipped)": RandomForestClassifier(100, min_samples_leaf=5, class_weight="balanced", random_state=0),
        "forest 300 trees, leaf 5": RandomForestClassifier(300, min_samples_leaf=5, class_weight="balanced", random_state=0),
        "forest 100 trees, leaf 1": RandomForestClassifier(100, min_samples_leaf=1, class_weight="balanced", random_state=0),
        "forest 100 trees, leaf 20": RandomForestClassifier(100, min_samples_leaf=20, class_weight="balanced", random_state=0),
        "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, class_weight="balanced")),
    }  # fmt: skip
    print("| critic | candidates | rule | forest (evaluation) | logistic | range | repetition |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, critic in [("none", None), *critics.items()]:
        if critic is not None:
            critic.fit(matrix, labels)
        for k in [1] if critic is None else range(2, args.k + 1):
            for rule in ["-"] if critic is None else ["argmax", "sir"]:
                forest, logistic, ranges, repetition = [], [], [], []
                for seed, tables in sets.items():
                    scores = None
                    if critic is not None:
                        scores = np.stack([critic.predict_proba(feature_matrix(t))[:, 1] for t in tables[:k]], axis=1)
                    chosen = select(tables[:k], scores, rule, np.random.default_rng(seed))
                    forest.append(discriminate(calib_table, chosen, ClassifierConfig(seed=seed))["accuracy"])
                    logistic.append(discriminate(calib_table, chosen, ClassifierConfig(seed=seed, kind="logistic"))["accuracy"])
                    ranges.append(chosen["pitch_range"].mean())
                    repetition.append(chosen["repetition"].mean())
                print(f"| {name} | {k} | {rule} | {np.mean(forest):.1%} ± {np.std(forest):.1%} | {np.mean(logistic):.1%} | "
                      f"{np.mean(ranges):.2f} | {np.mean(repetition):.3f} |", flush=True)  # fmt: skip
    print(f"| calibration songs | | | | | {calib_table['pitch_range'].mean():.2f} | {calib_table['repetition'].mean():.3f} |")
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
