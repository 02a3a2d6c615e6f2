"""Generation speed: steps per second (one melody, a batch of 64), load + generate + MIDI, CLI wall time.

Uses models/erk.pt when present, else a freshly initialised model of the erk preset's shape
(same cost per step: the weights do not change the arithmetic). Run: .venv/bin/python benchmarks/bench_generate.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tunesmith.config import load_preset
from tunesmith.encoding import SPECIALS
from tunesmith.generate import Generator, default_model_path
from tunesmith.generate.search import sample_batch
from tunesmith.checkpoint import Checkpoint
from tunesmith.model import MelodyLSTM


def checkpoint_path(folder: Path) -> tuple[Path, str]:
    """The shipped model, or a fresh erk-shaped one saved in ``folder``."""
    shipped = default_model_path()
    if shipped.is_file():
        return shipped, f"shipped model {shipped.name}"
    config = load_preset("erk")
    vocab = list(SPECIALS) + [str(p) for p in range(52, 89)]
    meters = ["<unk>", "2/4", "3/2", "3/4", "4/4", "6/8"]
    model = MelodyLSTM(config.model, len(vocab), 3, len(meters))
    path = folder / "erk-shape.pt"
    Checkpoint.from_model(model, config=config.to_dict(), vocab=vocab, modes=["<unk>", "major", "minor"],
                          meters=meters, steps_per_quarter=4).save(path)  # fmt: skip
    return path, "freshly initialised model of the erk preset's shape (models/erk.pt absent)"


def steps_per_second(generator: Generator, num: int, steps: int, repeats: int = 3) -> float:
    """Aggregate generated steps per second; ``</s>`` is masked out so every row runs ``steps`` steps."""
    mask = torch.ones(len(generator.vocab), dtype=torch.bool)
    mask[generator.vocab.end] = False
    positions = [s % 16 for s in range(steps + 1)]
    best = float("inf")
    for repeat in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        rows = sample_batch(generator.model, generator.vocab, [], positions, 1, 3, mask.to(generator.device), num,
                            torch.Generator(device=generator.device).manual_seed(repeat), "sample", 1.0, 8, 0.9, 0.5)  # fmt: skip
        elapsed = time.perf_counter() - start
        assert sum(len(r) for r in rows) == num * steps
        if repeat:
            best = min(best, elapsed)
    return num * steps / best


def load_generate_write(path: Path, folder: Path, repeats: int = 5) -> float:
    """Median seconds to load the checkpoint, generate 16 bars of 4/4 and write the MIDI file."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        melody = Generator.from_checkpoint(path, "cpu").generate(bars=16, seed=i)[0]
        melody.write(folder / f"m{i}.mid")
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def cli_wall(path: Path, folder: Path, formats: str) -> float:
    """Seconds of a whole ``tunesmith generate`` process (imports included)."""
    tunesmith = Path(sys.executable).parent / "tunesmith"
    start = time.perf_counter()
    subprocess.run([str(tunesmith), "generate", "--model", str(path), "--bars", "16", "--seed", "1", "--formats",
                    formats, "--out", str(folder / f"cli-{formats.replace(',', '-')}")], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, which = checkpoint_path(folder)
        generator = Generator.from_checkpoint(path, "cpu")
        print(f"model: {which}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
        single = steps_per_second(generator, 1, 2000)
        print(f"one melody:       {single:,.0f} steps/s (target >= 2,000)")
        batch = steps_per_second(generator, 64, 1000)
        print(f"batch of 64:      {batch:,.0f} steps/s aggregate (target >= 50,000)")
        inproc = load_generate_write(path, folder)
        print(f"load + 16 bars + MIDI, in process: {inproc:.3f} s median of 5 (target <= 0.5 s)")
        print(f"tunesmith generate --formats mid, whole process: {cli_wall(path, folder, 'mid'):.2f} s")
        print(f"tunesmith generate, all formats, whole process: {cli_wall(path, folder, 'all'):.2f} s")


if __name__ == "__main__":
    main()
