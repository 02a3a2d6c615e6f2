"""Training throughput: tunesmith's loop vs a bare ``torch.nn.LSTM`` forward+backward on the same shapes.

Both see the erk preset's model shape and the very batches (B×T, length-bucketed) one epoch of
``train()`` uses on a subset of the erk training songs. The bare loop runs before and after the
tunesmith epoch and their mean is the reference, which evens out drift from other processes on
a shared machine. Prints tokens/s of each, the ratio (target ≥ 0.8) and this process's peak RSS.

Run: .venv/bin/python benchmarks/bench_train.py [--songs 400] [--preset erk]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from tunesmith.config import load_preset
from tunesmith.corpus import prepare
from tunesmith.corpus.dataset import Dataset
from tunesmith.model import MelodyLSTM
from tunesmith.training import data as batching
from tunesmith.training.loop import train


def bare_lstm_tokens_per_s(shapes: list[tuple[int, int, int]], width: int, hidden: int, layers: int) -> float:
    """Tokens/s of nn.LSTM forward + backward alone over ``(batch, steps, real tokens)`` shapes."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(width, hidden, layers, batch_first=True)
    tokens, started = 0, time.perf_counter()
    for batch, steps, real in shapes:
        output, _ = lstm(torch.randn(batch, steps, width))
        output.sum().backward()
        tokens += real
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=400, help="training songs in the measured epoch")
    parser.add_argument("--preset", default="erk")
    args = parser.parse_args()
    config = load_preset(args.preset)
    config.train.epochs, config.train.max_minutes, config.train.early_stop = 1, 0.0, 0
    full = prepare(config.corpus, config.encoding, progress=False)
    train_songs = full.split("train")[: args.songs]
    examples = train_songs + full.split("val")[:20]
    dataset = Dataset(examples, full.vocab, full.report, full.folder, full.steps_per_quarter)

    modes, meters = batching.condition_vocabularies(train_songs)
    tensors = batching.tensorize(train_songs, full.vocab, modes, meters, full.steps_per_quarter)
    chunks = batching.chunk(tensors, config.train.chunk_steps)
    batches = batching.epoch_batches(chunks, config.train.batch_size, seed=config.train.seed * 100_003)
    shapes = [(len(b), max(len(c.targets) for c in b), sum(len(c.targets) for c in b)) for b in batches]
    m = config.model
    width = MelodyLSTM(m, len(full.vocab), len(modes), len(meters)).lstm.input_size  # every input the model concatenates
    threads = config.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)

    before = bare_lstm_tokens_per_s(shapes, width, m.hidden, m.layers)
    with tempfile.TemporaryDirectory() as folder:
        result = train(config, Path(folder) / "run", dataset=dataset, progress=False)
    ours = result.state.history[-1]["tokens_per_s"]
    after = bare_lstm_tokens_per_s(shapes, width, m.hidden, m.layers)
    bare = (before + after) / 2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"model: {m.layers}×{m.hidden} LSTM, input width {width}; {len(batches)} batches of ≤ "
          f"{config.train.batch_size} × ≤ {config.train.chunk_steps} steps; {sum(s[2] for s in shapes):,} tokens; "
          f"{threads} torch threads")  # fmt: skip
    print(f"bare nn.LSTM forward+backward   {bare:10,.0f} tokens/s  (before {before:,.0f}, after {after:,.0f})")
    print(f"tunesmith train loop            {ours:10,.0f} tokens/s  (the whole train() step: embeddings, head, loss, clip, Adam, average)")
    print(f"ratio tunesmith / bare          {ours / bare:10.2f}     (target >= 0.8)")
    print(f"peak RSS of this process        {peak_mb:10,.0f} MB")


if __name__ == "__main__":
    main()
