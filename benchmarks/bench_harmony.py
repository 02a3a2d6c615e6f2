"""The harmoniser: training time, held-out Nottingham figures, and chords for generated melodies.

Trains exactly as ``tunesmith harmonize --train`` does (split by tune title; settings chosen on
training tunes only), then reports on the held-out tunes: chord accuracy (exact, by root) of the
HMM beside two baselines (always the tonic; the diatonic triad holding most of the melody) and
the share of melody notes that are chord tones. Generated melodies have no annotation, so for
them it reports chord tones and the tonic/dominant/subdominant shares beside the same figures on
the held-out tunes. Writes benchmarks/results/harmony.md; ``--save`` also rewrites models/harmony.json.

Run: .venv/bin/python benchmarks/bench_harmony.py [--data ../shared/data/nottingham-abc] [--save]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Generated melodies judged: (mode, meter) × MELODIES_EACH, 16 bars, fixed seeds.
GENERATED = [("major", "4/4"), ("major", "3/4"), ("major", "6/8"), ("minor", "4/4"), ("minor", "3/4")]
MELODIES_EACH = 8


def generated_songs() -> list:
    """Melodies from the shipped melody model: the one place this benchmark calls the generator."""
    from tunesmith.generate import generate_melodies

    songs = []
    for index, (mode, meter) in enumerate(GENERATED):
        melodies = generate_melodies(num=MELODIES_EACH, mode=mode, meter=meter, bars=16, seed=100 + index, device="cpu")
        songs += [m.song for m in melodies]
    return songs


def judge_unannotated(model, passages, per: str) -> dict[str, dict[str, float]]:
    """Chord-tone ratio and function shares of the HMM and both baselines on passages."""
    from tunesmith.harmony.metrics import chord_tone_ratio, function_shares, most_notes_baseline, tonic_baseline

    rows = {"HMM": [model.decode(p, per) for p in passages], "tonic": [tonic_baseline(p) for p in passages],
            "most notes": [most_notes_baseline(p) for p in passages]}  # fmt: skip
    modes = [p.mode for p in passages]
    return {name: {"chord_tones": chord_tone_ratio(passages, labels)} | function_shares(labels, modes)
            for name, labels in rows.items()}  # fmt: skip


def machine() -> str:
    """CPU model and core count, for the record."""
    name = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="Nottingham folder (default ../shared/data/nottingham-abc)")
    parser.add_argument("--save", action="store_true", help="also write the trained model to models/harmony.json")
    args = parser.parse_args()

    from tunesmith.errors import TunesmithError
    from tunesmith.harmony.decode import song_passage
    from tunesmith.harmony.metrics import function_shares
    from tunesmith.harmony.model import HarmonyConfig, default_harmony_path
    from tunesmith.harmony.nottingham import read_folder
    from tunesmith.harmony.training import passages_of, split_records, train

    config = HarmonyConfig(data=args.data)
    started = time.perf_counter()
    try:
        records = read_folder(config.data or None, workers=config.workers)
    except TunesmithError as exc:  # the shared data folder is absent: nothing to measure
        print(f"bench_harmony: skipped: {exc}")
        return 0
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model, figures = train(records, config)
    train_seconds = time.perf_counter() - started
    if args.save:
        model.save(default_harmony_path())
    size = len(model.to_dict().__repr__())
    print(f"read {len(records)} tunes in {read_seconds:.1f} s; trained in {train_seconds:.1f} s")

    lines = [f"# Harmoniser figures ({date.today()}, {machine()})", "",
             f"Command: `.venv/bin/python benchmarks/bench_harmony.py{' --save' if args.save else ''}`.",
             f"Nottingham tunes read: {len(records)} (reading {read_seconds:.1f} s, from the cache when warm). "
             f"Split by title: {model.info['tunes']}. Training (settings search on dev tunes + final fit): {train_seconds:.1f} s. "
             f"Chosen: accent {model.info['chosen']['accent']}, beta {model.info['chosen']['beta']}. "
             f"States: {', '.join(f'{m} {len(s)}' for m, s in model.states.items())}. Default span per meter: {model.default_per}.", ""]  # fmt: skip
    lines += ["## Held-out Nottingham tunes", "", "| chords per | harmoniser | exact | by root | chord tones |", "|---|---|---|---|---|"]
    for per, result in figures.items():
        for name, label in (("model", "HMM"), ("tonic", "baseline: always the tonic"),
                            ("most notes", "baseline: triad with most melody"), ("annotated", "the annotation itself")):  # fmt: skip
            row = result[name]
            exact = f"{row['exact']:.1%}" if "exact" in row else "—"
            root = f"{row['root']:.1%}" if "root" in row else "—"
            lines.append(f"| {per} ({result['model']['spans']} spans) | {label} | {exact} | {root} | {row['chord_tones']:.1%} |")

    started = time.perf_counter()
    songs = generated_songs()
    generate_seconds = time.perf_counter() - started
    test = split_records(records, config)["test"]
    lines += ["", f"## Generated melodies ({len(songs)}: {MELODIES_EACH} each of {', '.join(f'{m} {t}' for m, t in GENERATED)}, 16 bars, shipped erk model)", "",
              "No annotation exists for them, so accuracy cannot be measured; chord tones and the share of spans on",
              "tonic / dominant / subdominant roots are compared with the held-out Nottingham tunes.", "",
              "| melodies | chords per | harmoniser | chord tones | tonic | dominant | subdominant | other |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for per in ("bar", "half"):
        for source, passages in (("Nottingham held out", [p for r in test for p in passages_of(r, per)]),
                                 ("generated", [song_passage(s, per) for s in songs])):  # fmt: skip
            judged = judge_unannotated(model, passages, per)
            if source.startswith("Nottingham"):
                judged["annotation"] = {"chord_tones": figures[per]["annotated"]["chord_tones"]} | function_shares(
                    [p.gold for p in passages], [p.mode for p in passages])
            for name, row in judged.items():
                lines.append(f"| {source} | {per} | {name} | {row['chord_tones']:.1%} | {row['tonic']:.0%} | "
                             f"{row['dominant']:.0%} | {row['subdominant']:.0%} | {row['other']:.0%} |")  # fmt: skip
    lines += ["", f"Generating the {len(songs)} melodies took {generate_seconds:.1f} s. Model file: {size:,} characters of JSON.", ""]
    out = ROOT / "benchmarks" / "results" / "harmony.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
