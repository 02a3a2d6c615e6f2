"""Generation speed: steps per second (one melody, a batch of 64), load + generate + MIDI, CLI wall time.

Uses models/erk.pt when present, else a freshly initialised model of the erk preset's shape
(same cost per step: the weights do not change the arithmetic).

``--baseline REF`` also times the decoding loop of an older commit (default 5a3aedd, the two
separate loops before the one generation engine) in the same run, alternating old and new, so
before/after are measured under the same load. Run: .venv/bin/python benchmarks/bench_generate.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tunesmith.checkpoint import Checkpoint
from tunesmith.config import load_preset
from tunesmith.encoding import SPECIALS
from tunesmith.generate import GenerationConfig, Generator, default_model_path
from tunesmith.model import MelodyLSTM

ROOT = Path(__file__).resolve().parents[1]
# Times the old loop: run inside a subprocess whose PYTHONPATH is the old commit's src/.
OLD_LOOP = """
import sys, time, torch
from tunesmith.encoding import Vocabulary
from tunesmith.model import model_from_checkpoint
from tunesmith.generate.search import sample_batch
payload = torch.load(sys.argv[1], weights_only=False)
model, vocab = model_from_checkpoint(payload, "cpu"), Vocabulary(payload["vocab"])
num, steps, seed = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mask = torch.ones(len(vocab), dtype=torch.bool)
mask[vocab.end] = False
positions = [s % 16 for s in range(steps + 1)]
meter = payload["meters"].index("4/4")
for repeat in range(2):  # the first run warms up
    start, start_cpu = time.perf_counter(), time.process_time()
    rows = sample_batch(model, vocab, [], positions, 1, meter, mask, num, torch.Generator().manual_seed(seed),
                        "sample", 1.0, 8, 0.9, 0.5)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
print(num * steps / elapsed, num * steps / cpu)
"""


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


def steps_per_second(generator: Generator, num: int, steps: int, seed: int, repeats: int = 1) -> tuple[float, float]:
    """Aggregate steps per second of the decoding loop (plan made once, outside the timing), by
    wall clock and by CPU time (all threads); ``full_length`` keeps ``</s>`` out so every row runs
    ``steps`` steps. Best of ``repeats`` after a warm-up run."""
    config = GenerationConfig(num=num, steps=steps, meter="4/4", full_length=True, seed=seed)
    best, best_cpu = float("inf"), float("inf")
    for repeat in range(repeats + 1):
        plan = generator.plan(config)
        start, start_cpu = time.perf_counter(), time.process_time()
        rows = [row for decoded in generator.decode(plan, config) for row in decoded.ids]
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        assert sum(len(r) for r in rows) == num * steps
        if repeat:
            best, best_cpu = min(best, elapsed), min(best_cpu, cpu)
    return num * steps / best, num * steps / best_cpu


def old_steps_per_second(source: Path, path: Path, num: int, steps: int, seed: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", OLD_LOOP, str(path), str(num), str(steps), str(seed)],
                            env=env, check=True, capture_output=True, text=True)  # fmt: skip
    wall, cpu = result.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def old_tree(ref: str, folder: Path, checkpoint: Path) -> tuple[Path, Path]:
    """The ``src/`` of commit ``ref`` unpacked in ``folder``, and the model in the old (v2) file layout."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    loaded = Checkpoint.load(checkpoint).to_dict()
    old = {**{k: v for k, v in loaded.items() if k != "extra"}, "version": 2}
    torch.save(old, folder / "model-v2.pt")
    return folder / "src", folder / "model-v2.pt"


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
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tunesmith", "generate", "--model", str(path), "--bars", "16", "--seed", "1",
                    "--formats", formats, "--out", str(folder / f"cli-{formats.replace(',', '-')}")], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, metavar="REF", help="also time this commit's loop (e.g. 5a3aedd)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating old/new rounds with --baseline")
    parser.add_argument("--quick", action="store_true", help="only the steps/s figures")
    parser.add_argument("--only", choices=["one", "batch"], default=None, help="only one of the steps/s cases")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path, which = checkpoint_path(folder)
        generator = Generator.from_checkpoint(path, "cpu")
        print(f"model: {which}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        cases = [("one melody", 1, 2000, 2_000), ("batch of 64", 64, 1000, 50_000)]
        cases = [c for c in cases if args.only is None or c[0].startswith(args.only)]
        if args.baseline:
            source, old_path = old_tree(args.baseline, folder, path)
            for label, num, steps, target in cases:
                new, old = [], []
                for round_ in range(args.rounds):
                    old.append(old_steps_per_second(source, old_path, num, steps, round_))
                    new.append(steps_per_second(generator, num, steps, round_))
                for name, runs in (("this tree", new), (args.baseline, old)):
                    print(f"{label} (target >= {target:,} steps/s), {name}: wall best {max(w for w, _ in runs):,.0f} "
                          f"(runs {', '.join(f'{w:,.0f}' for w, _ in runs)}); per CPU second best "
                          f"{max(c for _, c in runs):,.0f}", flush=True)  # fmt: skip
        else:
            for label, num, steps, target in cases:
                wall, cpu = steps_per_second(generator, num, steps, 0, repeats=2)
                print(f"{label}: {wall:,.0f} steps/s, {cpu:,.0f} per CPU second (target >= {target:,})")
        if args.quick:
            return
        inproc = load_generate_write(path, folder)
        print(f"load + 16 bars + MIDI, in process: {inproc:.3f} s median of 5 (target <= 0.5 s)")
        print(f"tunesmith generate --formats mid, whole process: {cli_wall(path, folder, 'mid'):.2f} s")
        print(f"tunesmith generate, all formats, whole process: {cli_wall(path, folder, 'all'):.2f} s")


if __name__ == "__main__":
    main()
