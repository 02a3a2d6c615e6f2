"""Generation speed: steps per second (one melody, a batch of 64), load + generate + MIDI, CLI wall time.

One melody is timed three times: 2,000 steps without a form (``--steps``, as the batch), and,
with a form-aware model, a default request of 64 bars (a form drawn from the corpus, the copy
guard and the cadence bias: what ``tunesmith generate --bars 64`` decodes for one candidate), and
that whole request end to end (its candidates and form retries decoded, the critic's choice kept:
the steps of the melody it gives per second of the call; its candidates decode on two cores at
once where ``generate.forked`` may fork, and the CPU-time figure counts the forked copies too).

Uses models/erk.pt when present, else a freshly initialised model of the erk preset's shape
(same cost per step: the weights do not change the arithmetic).

``--baseline REF`` also times the sampling loop of an older commit (5a3aedd: the two separate
loops before the one generation engine), loaded from git into this process, alternating old and
new on the same model object, so before/after are measured under the same load. Run: .venv/bin/python benchmarks/bench_generate.py
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
# The line of the old loop's source that imported what has moved since.
OLD_IMPORT = "from tunesmith.generate.constraints import apply_mask, structure_mask"
NEW_IMPORT = "from tunesmith.generate.constraints import apply_mask\nfrom tunesmith.generate.controls import structure_mask"


def old_loop(ref: str):
    """``sample_batch`` of ``generate/search.py`` at commit ``ref`` (the loop before the one
    engine), loaded from git into this process so old and new run on the same model object."""
    import types

    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:src/tunesmith/generate/search.py"],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    module = types.ModuleType("old_search")
    exec(compile(source.replace(OLD_IMPORT, NEW_IMPORT), f"{ref}:search.py", "exec"), module.__dict__)
    return module.sample_batch


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


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (a request's candidates may
    decode in forked copies, ``generate.forked``): user + system."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed(run, num: int, steps: int | None) -> tuple[float, float]:
    """(wall, CPU-time) aggregate steps/s of one call of ``run`` (``steps`` per row, checked; None:
    counted, for a drawn form whose pickup and last bar set the length)."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    rows = run()
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    done = sum(len(r) for r in rows)
    assert steps is None or done == num * steps
    return done / elapsed, done / cpu


def new_run(generator: Generator, num: int, steps: int, seed: int):
    """One decoding run of this tree (plan made outside the timing); ``full_length`` keeps
    ``</s>`` out so every row runs ``steps`` steps."""
    config = GenerationConfig(num=num, steps=steps, meter="4/4", full_length=True, seed=seed)
    plan = generator.plan(config)
    return lambda: [row for decoded in generator.decode(plan, config) for row in decoded.ids]


def form_run(generator: Generator, num: int, bars: int, seed: int):
    """A default request of ``bars`` bars of 4/4 (a form drawn from the corpus with the seed, the
    copy guard, the cadence bias): a melody with a form lasts exactly the form, ``bars`` bars (its
    last bar what the drawn pickup leaves, or the drawn last bar)."""
    config = GenerationConfig(num=num, bars=bars, meter="4/4", seed=seed)
    plan = generator.plan(config)
    assert plan.form is not None and 0 <= bars * plan.bar_length - plan.total_steps < plan.bar_length
    return lambda: [row for decoded in generator.decode(plan, config) for row in decoded.ids]


def whole_run(generator: Generator, bars: int, seed: int):
    """A whole default ``tunesmith generate --bars N`` request (plan, every candidate, the form
    retries, the critic's choice): the steps of the one melody it gives, per second of all that."""
    config = GenerationConfig(bars=bars, meter="4/4", seed=seed)
    return lambda: [melody.tokens for melody in generator.generate(config)]


def old_run(sample_batch, generator: Generator, num: int, steps: int, seed: int):
    """The same request through the old loop (``</s>`` masked out, as its benchmark did)."""
    mask = torch.ones(len(generator.vocab), dtype=torch.bool)
    mask[generator.vocab.end] = False
    positions = [s % 16 for s in range(steps + 1)]
    meter = generator.meters.index("4/4")
    return lambda: sample_batch(generator.model, generator.vocab, [], positions, 1, meter, mask, num,
                                torch.Generator().manual_seed(seed), "sample", 1.0, 8, 0.9, 0.5)  # fmt: skip


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
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (old and new alternate with --baseline)")
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
        if generator.form_aware:  # what a default request decodes: a drawn form, the guard, the cadence
            cases.insert(1, ("one melody, default request of 64 bars (drawn form)", 1, 64 * 16, 2_000))
            cases.insert(2, ("one melody, whole default request of 64 bars (candidates, critic)", 1, 64 * 16, 2_000))
        cases = [c for c in cases if args.only is None or c[0].startswith(args.only)]
        for label, num, steps, target in cases:
            drawn_form = "drawn form" in label or "whole" in label
            loops = {"this tree": lambda num, steps, seed: new_run(generator, num, steps, seed)}
            if "whole" in label:
                loops = {"this tree": lambda num, steps, seed: whole_run(generator, steps // 16, seed)}
            elif drawn_form:
                loops = {"this tree": lambda num, steps, seed: form_run(generator, num, steps // 16, seed)}
            elif args.baseline:
                sample_batch = old_loop(args.baseline)
                loops[args.baseline] = lambda num, steps, seed: old_run(sample_batch, generator, num, steps, seed)
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in loops}
            for round_ in range(args.rounds + 1):  # alternating, so both see the same load; round 0 warms up
                for name, make in loops.items():
                    result = timed(make(num, steps, round_), num, None if drawn_form else steps)
                    if round_:
                        runs[name].append(result)
            for name, results in runs.items():
                walls = sorted(w for w, _ in results)
                print(f"{label} (target >= {target:,} steps/s), {name}: wall best {walls[-1]:,.0f}, median "
                      f"{statistics.median(walls):,.0f} of {len(walls)}; CPU-time best "
                      f"{max(c for _, c in results):,.0f}", flush=True)  # fmt: skip
        if args.quick:
            return
        inproc = load_generate_write(path, folder)
        print(f"load + 16 bars + MIDI, in process: {inproc:.3f} s median of 5 (target <= 0.5 s)")
        print(f"tunesmith generate --formats mid, whole process: {cli_wall(path, folder, 'mid'):.2f} s")
        print(f"tunesmith generate, all formats, whole process: {cli_wall(path, folder, 'all'):.2f} s")


if __name__ == "__main__":
    main()
