"""Evaluation speed: each stage on the erk corpus, then the whole ``tunesmith evaluate`` (200 melodies).

Uses models/erk.pt when present, else a freshly initialised model of the erk preset's shape: an
untrained model rarely chooses ``</s>``, so every melody runs its full length and the generation
time is an upper bound. Run: .venv/bin/python benchmarks/bench_evaluate.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(label: str, fn, repeat: int = 1):
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<66} {best:8.3f} s")
    return value


def checkpoint_path(folder: Path, dataset) -> tuple[Path, str]:
    """The shipped model, or a fresh erk-shaped one over the dataset's vocabulary."""
    import torch

    from tunesmith.config import load_preset
    from tunesmith.generate import default_model_path
    from tunesmith.checkpoint import Checkpoint
    from tunesmith.model import MelodyLSTM
    from tunesmith.training.data import condition_vocabularies

    shipped = default_model_path()
    if shipped.is_file():
        return shipped, f"shipped model {shipped.name}"
    config = load_preset("erk")
    modes, meters = condition_vocabularies(dataset.split("train"))
    torch.manual_seed(0)
    model = MelodyLSTM(config.model, len(dataset.vocab), len(modes), len(meters))
    path = folder / "erk-shape.pt"
    Checkpoint.from_model(model, config=config.to_dict(), vocab=dataset.vocab.tokens, modes=modes, meters=meters,
                          steps_per_quarter=4).save(path)  # fmt: skip
    return path, "freshly initialised model of the erk preset's shape (models/erk.pt absent)"


def main() -> None:
    from tunesmith.config import load_preset
    from tunesmith.corpus import prepare
    from tunesmith.evaluate.classifier import discriminate
    from tunesmith.evaluate.compare import compare_sets
    from tunesmith.evaluate.metrics import feature_table
    from tunesmith.evaluate.ngram import NGramModel
    from tunesmith.evaluate.originality import OriginalityIndex, originality

    config = load_preset("erk")
    dataset = prepare(config.corpus, config.encoding, progress=False)
    vocab, train, val = dataset.vocab, dataset.split("train"), dataset.split("val")
    train_ids = [vocab.ids(e.tokens) for e in train]
    val_ids = [vocab.ids(e.tokens) for e in val]
    tokens = sum(len(t) + 2 for t in train_ids)
    print(f"essen/erk: {len(train)} training songs ({tokens:,} tokens), {len(val)} validation songs\n")

    ngram = timed("n-gram: count orders 1..16 on the training split", lambda: NGramModel(vocab, 16).fit(train_ids), 3)
    order = timed("n-gram: choose the order on validation", lambda: ngram.choose_order(val_ids), 3)
    timed(f"n-gram: full distributions of every validation step (order {order})",
          lambda: [ngram.log_probs(s) for s in val_ids], 3)  # fmt: skip
    index = timed("originality: suffix automaton of the training split", lambda: OriginalityIndex(e.song for e in train), 3)
    print(f"{'':<4}({len(index.automaton.length):,} states)")
    timed("originality: longest shared stretch of 182 validation songs", lambda: originality(index, [e.song for e in val]), 3)
    real = timed("features: 12 note-level + 6 structure features of 182 songs",
                 lambda: feature_table([e.song for e in val]), 3)  # fmt: skip
    rng = np.random.default_rng(0)
    other = feature_table([train[i].song for i in rng.choice(len(train), 200, replace=False)])
    timed("statistics: Yang & Lerch, 182 vs 200 melodies, 18 features", lambda: compare_sets(real, other), 3)
    timed("classifier: 5-fold random forest, 182 vs 182", lambda: discriminate(real, other))

    with tempfile.TemporaryDirectory() as folder:
        path, described = checkpoint_path(Path(folder), dataset)
        out = Path(folder) / "report"
        command = [sys.executable, "-m", "tunesmith", "evaluate", "--model", str(path), "--num", "200",
                   "--out", str(out), "--no-progress"]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - started
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    print(f"\nfull `tunesmith evaluate --num 200` with the {described}:")
    print(f"{'wall time (process start to report written)':<66} {wall:8.1f} s")
    for stage, seconds in metrics["seconds"].items():
        print(f"{'  ' + stage:<66} {seconds:8.2f} s")


if __name__ == "__main__":
    main()
