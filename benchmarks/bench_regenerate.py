"""Regenerating 4 bars: does the join sound right, and is it fast enough?

On held-out songs (the validation split of the shipped model's own corpus, essen/erk), a random
4-bar region of each song is regenerated with best-of-K rescoring (``tunesmith regenerate``'s
mechanism, K = 32) and, for comparison, naively (one candidate, blind to the bars after the
region). Reported, over ``--num`` regenerations (default 200):

- the mean log-likelihood (nats) of the kept suffix — every bar after the region — under the
  model, for the original song, the chosen candidate and the naive one;
- at the join (last note of the region → first note after it, and into the region): mean
  absolute interval, share of leaps over a fifth, share of region notes outside the key's scale,
  share of onsets on a beat — beside the same figures for the original songs;
- with ``--alternatives N`` (the studio keeps 4), the N best candidates are all scored (against
  the first N as "naive"), which is how many candidates per alternative is judged;
- the time to regenerate 4 bars of a 16-bar melody with 32 candidates, in process, on
  ``--threads`` CPU threads (target <= 0.3 s on 2 cores).

Run: TUNESMITH_CACHE=... .venv/bin/python benchmarks/bench_regenerate.py [--num 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from tunesmith.encoding import is_pitch
from tunesmith.generate import Generator, Melody, default_model_path
from tunesmith.generate.regenerate import RegenerateConfig, _best, kept_tail, plan_region
from tunesmith.meter import bar_spans
from tunesmith.song import SCALES, bar_steps, step_positions


def held_out_melodies(generator: Generator, min_bars: int = 10) -> list[Melody]:
    """Validation songs of the model's corpus as Melodies in the model's key (C major / A minor)."""
    from tunesmith.config import Config
    from tunesmith.corpus import prepare

    run_config = Config.from_dict(generator.payload["config"])
    dataset = prepare(run_config.corpus, run_config.encoding, progress=False)
    melodies = []
    for example in dataset.split("val"):
        song = example.song
        if song.meter not in generator.meters or not all(t in generator.vocab for t in example.tokens):
            continue
        if len(bar_spans(song)) < min_bars:
            continue
        song = replace(song, key="C" if song.mode == "major" else "A", transposition=0)
        params = {"model_fingerprint": generator.fingerprint, "ended_by": "end token", "title": song.title}
        melodies.append(Melody(list(example.tokens), song, params))
    return melodies


def suffix_log_likelihood(generator: Generator, melody: Melody, tokens: list[str], end: int) -> float:
    """log p(tokens[end:] + </s> | tokens[:end]) under the model, in nats."""
    vocab, song = generator.vocab, melody.song
    ids = [vocab.start] + vocab.ids(tokens) + [vocab.end]
    bar = bar_steps(song.meter, song.steps_per_quarter)
    positions = step_positions(song.bar_starts, len(tokens), bar)
    log_p = generator.model.log_likelihood(
        torch.tensor([ids]), torch.tensor([[0] + positions]),
        torch.tensor([generator.modes.index(song.mode)]), torch.tensor([generator.meters.index(song.meter)]),
    )[0]  # fmt: skip
    return float(log_p[end:].sum())


def join_figures(tokens: list[str], start: int, end: int, mode: str, beat: int,
                 positions: list[int]) -> dict[str, list[float]]:  # fmt: skip
    """Intervals into and out of the region, out-of-scale notes and onsets on a beat inside it."""
    onsets = [(i, int(t)) for i, t in enumerate(tokens) if is_pitch(t)]
    before = [p for i, p in onsets if i < start][-1:]
    inside = [(i, p) for i, p in onsets if start <= i < end]
    after = [p for i, p in onsets if i >= end][:1]
    figures: dict[str, list[float]] = {"join_interval": [], "leap": [], "out_of_scale": [], "on_beat": []}
    if inside:
        pairs = ([(before[0], inside[0][1])] if before else []) + ([(inside[-1][1], after[0])] if after else [])
        for a, b in pairs:
            figures["join_interval"].append(abs(b - a))
            figures["leap"].append(float(abs(b - a) > 7))
        tonic = 0 if mode == "major" else 9
        figures["out_of_scale"] += [float((p - tonic) % 12 not in SCALES[mode]) for _, p in inside]
        figures["on_beat"] += [float(positions[i] % beat == 0) for i, _ in inside]
    return figures


def whole_song_figures(tokens: list[str], mode: str, beat: int, positions: list[int]) -> dict[str, list[float]]:
    """The same figures over a whole song: every consecutive pair of notes, every note, every onset."""
    pitches = [int(t) for t in tokens if is_pitch(t)]
    on_beat = [float(positions[i] % beat == 0) for i, t in enumerate(tokens) if is_pitch(t)]
    steps = [abs(b - a) for a, b in zip(pitches, pitches[1:], strict=False)]
    tonic = 0 if mode == "major" else 9
    return {"join_interval": steps, "leap": [float(s > 7) for s in steps],
            "out_of_scale": [float((p - tonic) % 12 not in SCALES[mode]) for p in pitches],
            "on_beat": on_beat}  # fmt: skip


def run(generator: Generator, melodies: list[Melody], num: int, candidates: int, seed: int, horizon: int,
        alternatives: int = 1, join_bars: int = 0):  # fmt: skip
    rng = random.Random(seed)
    sums = {"original": [], "chosen": [], "naive": []}
    joins = {name: {} for name in ("original", "chosen", "naive", "songs")}
    for n in range(num):
        melody = rng.choice(melodies)
        numbers = sorted(k for k in bar_spans(melody.song) if k >= 1)
        first = rng.randint(numbers[0] + 1, numbers[-1] - 4)  # a bar before, at least one after
        config = RegenerateConfig(bars=f"{first}-{first + 3}", candidates=candidates, seed=seed + n, horizon=horizon,
                                  num=alternatives, join_bars=join_bars)  # fmt: skip
        plan, (start, end) = plan_region(generator, melody, config)
        decoded = generator.decode_plans([plan], config.generation())[0]
        tail = kept_tail(generator, melody, plan)
        ids = [row + tail for row in decoded.ids]
        chosen = [m.tokens for m in _best(generator, melody, config, plan, (start, end), decoded)]
        if join_bars:  # the first rows share trunks: the naive versions are a run with one candidate each
            naive_config = replace(config, candidates=alternatives, join_bars=0)
            naive_plan, _ = plan_region(generator, melody, naive_config)
            naive_ids = generator.decode_plans([naive_plan], naive_config.generation())[0].ids
            naive = [naive_plan.melody_tokens(row + tail)[0] for row in naive_ids]
        else:
            naive = [plan.melody_tokens(ids[i])[0] for i in range(alternatives)]
        song = melody.song
        beat = song.steps_per_quarter * 4 // int(song.meter.split("/")[1])
        if song.meter in ("6/8", "9/8", "12/8"):
            beat *= 3  # compound meters: the beat is a dotted quarter
        positions = step_positions(song.bar_starts, len(melody.tokens), bar_steps(song.meter, song.steps_per_quarter))
        # the studio's case: the best ``alternatives`` of the candidates, each counted
        versions = {"original": [melody.tokens], "chosen": chosen, "naive": naive}
        for name, versions_of in versions.items():
            for tokens in versions_of:
                sums[name].append(suffix_log_likelihood(generator, melody, tokens, end))
                for key, values in join_figures(tokens, start, end, song.mode, beat, positions).items():
                    joins[name].setdefault(key, []).extend(values)
        for key, values in whole_song_figures(melody.tokens, song.mode, beat, positions).items():
            joins["songs"].setdefault(key, []).extend(values)
    return sums, joins


def speed(generator: Generator, repeats: int, candidates: int, horizon: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds to regenerate bars 5-8 of a 16-bar melody with ``candidates``
    candidates (CPU time: what the run costs when other processes share the cores)."""
    melody = generator.generate(bars=16, seed=1, full_length=True)[0]
    wall, cpu = [], []
    for i in range(repeats + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        generator.regenerate(melody, (5, 8), candidates=candidates, seed=i, horizon=horizon)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall[1:], cpu[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="regenerations (default 200)")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon", type=int, default=4, help="bars after the region that rank candidates; 0 = all")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--join-bars", type=int, default=0,
                        help="candidates of one version share it up to its last N bars (the studio's setting)")
    parser.add_argument("--skip-speed", action="store_true", help="only the quality figures")
    parser.add_argument("--alternatives", type=int, default=1,
                        help="versions kept per regeneration (the studio asks for 4): the best N of the candidates "
                             "are scored, against the first N candidates as 'naive'")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = Generator.from_checkpoint(default_model_path(), "cpu")
    print(f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, {args.threads} threads")
    if not args.skip_speed:
        times, cpu = speed(generator, 10, args.candidates, args.horizon)
        print(f"regenerate 4 bars of 16 with {args.candidates} candidates, horizon {args.horizon}: wall median {statistics.median(times):.3f} s, "
              f"best {min(times):.3f} s; CPU time median {statistics.median(cpu):.3f} s, best {min(cpu):.3f} s; "
              f"{len(times)} runs (target <= 0.3 s)", flush=True)  # fmt: skip
    melodies = held_out_melodies(generator)
    started = time.perf_counter()
    sums, joins = run(generator, melodies, args.num, args.candidates, args.seed, args.horizon, args.alternatives,
                      args.join_bars)  # fmt: skip
    print(f"{args.num} regenerations of 4 bars in {len(melodies)} held-out songs, {args.alternatives} kept of "
          f"{args.candidates} candidates each (join bars {args.join_bars}, horizon {args.horizon}), "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print("| figure | original song | chosen (best of K) | naive (K = 1) | whole songs |")
    print("|---|---|---|---|---|")
    row = [f"{np.mean(sums[n]):.2f}" for n in ("original", "chosen", "naive")]
    print(f"| mean log-likelihood of the kept suffix (nats) | {' | '.join(row)} | |")
    for key, label in (("join_interval", "mean absolute interval at the two joins (semitones)"),
                       ("leap", "share of join intervals over a fifth"),
                       ("out_of_scale", "share of region notes outside the key's scale"),
                       ("on_beat", "share of region onsets on a beat")):  # fmt: skip
        cells = [f"{np.mean(joins[n][key]):.3f}" if joins[n].get(key) else "–" for n in ("original", "chosen", "naive", "songs")]
        print(f"| {label} | {' | '.join(cells)} |")
    closer = sum(c > v for c, v in zip(sums["chosen"], sums["naive"], strict=True))
    print(f"chosen beats naive on the suffix likelihood in {closer} of {len(sums['chosen'])} versions")


if __name__ == "__main__":
    main()
