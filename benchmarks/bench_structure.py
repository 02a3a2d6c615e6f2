"""Issue 10's figure set for any checkpoint: repetition, endings, form compliance, the classifier.

Runs ``tunesmith evaluate``'s pipeline (default generation settings; one melody per held-out
song, in its mode and meter and at its length, unless ``--num`` says otherwise) and prints, beside
the targets of issue 10:

* repeated 4-note patterns within a song, real vs generated (target: within ±25% of real);
* tonic endings (within 5 points) and mean final-note length (within 25%);
* with ``--form``: how often the requested form is honoured (≥ 95%);
* the classifier (random forest, 5 folds) telling generated from held-out real with the
  structure features (≤ 60%), without them, and held-out real vs as many training songs
  (the real-vs-real reference);
* the model's held-out pitch bits/note and bits/step.

Writes the table to ``benchmarks/results/structure-<name>.md`` (name: the model's file name,
plus the form). Run::

    .venv/bin/python benchmarks/bench_structure.py --model models/erk.pt [--form AABA] [--num 0]

``--seed 0 1 2`` measures each seed and adds their means (± sd over seeds) and, for the
classifier with structure features, a giveaway table: every feature column's forest importance,
its mean in the real and the generated songs, and how well it separates them alone (AUC, 0.5 =
not at all; above 0.5 = higher in generated songs). ``--half dev`` / ``--half test`` evaluate on
one fixed half of the validation songs (by title group, ``tunesmith.evaluate.pipeline
.evaluation_half``): generation settings are chosen on dev and confirmed on test, so the test
figure was never tuned on; ``--half all`` (the default) is the whole validation split.
``--half calib`` compares with a fixed fifth of the *training* songs instead (306 for erk;
``tunesmith.evaluate.pipeline.calibration_group``): generation settings calibrated there have
not looked at any validation song, and the set is larger than either half.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def real_reference(results: dict, train, seed: int, config) -> dict:
    """Classifier accuracy of held-out real songs vs as many training songs (structure features on)."""
    from tunesmith.evaluate.classifier import discriminate
    from tunesmith.evaluate.metrics import feature_table

    real = results["features"]["real"]
    size = len(next(iter(real.values())))
    rng = np.random.default_rng(seed)
    sample = [train[i].song for i in rng.choice(len(train), min(size, len(train)), replace=False)]
    return discriminate(real, feature_table(sample), config)


def measure(model: str, form: str = "", num: int = 0, seed: int = 0, progress: bool = False, half: str = "all") -> dict:
    """The figure set (a dict of plain numbers) for ``model``; see the module docstring."""
    from tunesmith.checkpoint import Checkpoint
    from tunesmith.config import Config
    from tunesmith.corpus import prepare
    from tunesmith.evaluate import EvaluateConfig, evaluate
    from tunesmith.evaluate.classifier import ClassifierConfig
    from tunesmith.evaluate.dryout import DryoutConfig

    started = time.perf_counter()
    run_config = Config.from_dict(Checkpoint.load(model).to_dict()["config"])
    dataset = prepare(run_config.corpus, run_config.encoding, progress=progress)
    classifier = ClassifierConfig(seed=seed)
    config = EvaluateConfig(num=num, seed=seed, form=form, progress=progress, dryout=DryoutConfig(num=0),
                            classifier=classifier, half=half)  # fmt: skip
    results = evaluate(model, config, dataset=dataset)
    train = dataset.split("train")
    if half == "calib":  # the reference compares the calibration songs with the other training songs
        from tunesmith.evaluate.pipeline import calibration_group

        train = [e for e in train if not calibration_group(e.group)]
    reference = real_reference(results, train, seed, classifier)
    real, gen = results["structure"]["real"], results["structure"]["generated"]
    prediction = results["prediction"]["model"]
    return {
        "model": model, "form": form, "seed": seed, "half": half, "evaluation_set": results["evaluation_set"],
        "real_songs": real["songs"], "generated": gen["songs"],
        "repetition": (real["repetition"], gen["repetition"]),
        "phrase_similarity": (real["phrase_similarity"], gen["phrase_similarity"]),
        "bar_similarity": (real["bar_similarity"], gen["bar_similarity"]),
        "tonic_endings": (real["tonic_endings"], gen["tonic_endings"]),
        "final_note_length": (real["final_note_length"], gen["final_note_length"]),
        "final_note_length_median": (real["final_note_length_median"], gen["final_note_length_median"]),
        "phrases_per_song": (real["phrases_per_song"], gen["phrases_per_song"]),
        "song_final_degrees": (real["song_final_degrees"], gen["song_final_degrees"]),
        "compliance": gen["compliance"],
        "classifier": (results["classifier"]["accuracy"], results["classifier"]["sd"]),
        "classifier_basic": (results["classifier_basic"]["accuracy"], results["classifier_basic"]["sd"]),
        "classifier_real": (reference["accuracy"], reference["sd"]),
        "top_features": results["classifier"]["top_features"],
        "giveaways": giveaways(results["features"]["real"], results["features"]["generated"],
                               results["classifier"]["importances"]),
        "overlap": results["statistics"]["summary"]["overlap"],
        "structure_overlap": {name: results["statistics"]["features"][name]["overlap"]
                              for name in ("repetition", "phrase_similarity", "bar_similarity", "tonic_ending",
                                           "final_note_length", "phrase_final_degrees")},  # fmt: skip
        "pitch_bits_per_note": prediction["pitch_bits_per_note"],
        "bits_per_step": prediction["bits_per_step"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def giveaways(real: dict, generated: dict, importances: list) -> dict:
    """Per feature column: (importance, real mean, generated mean, AUC of the column alone).

    The AUC is the chance that a random generated song has a higher value than a random real
    one (ties count half): 0.5 = the column alone tells nothing, above 0.5 = higher in
    generated songs, below = lower.
    """
    from tunesmith.evaluate.classifier import feature_names
    from tunesmith.evaluate.metrics import feature_matrix

    x_real, x_gen = feature_matrix(real), feature_matrix(generated)
    out = {}
    for column, (name, weight) in enumerate(importances):
        r, g = x_real[:, column], x_gen[:, column]
        greater = (g[:, None] > r[None, :]).mean() + 0.5 * (g[:, None] == r[None, :]).mean()
        out[name] = (float(weight), float(r.mean()), float(g.mean()), float(greater))
    assert list(out) == feature_names(real)
    return out


def summary_rows(runs: list[dict]) -> list[tuple[str, ...]]:
    """The headline figures, one column per seed and their mean ± sd over seeds."""

    def line(label: str, values: list[float], percent: bool, real: float | None = None) -> tuple[str, ...]:
        f = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:.2f}")
        ref = f(real) if real is not None else ""
        return (label, ref, *[f(v) for v in values], f"{f(float(np.mean(values)))} ± {f(float(np.std(values)))}")

    out = [
        line("repeated 4-note patterns", [m["repetition"][1] for m in runs], True, runs[0]["repetition"][0]),
        line("ends on the tonic", [m["tonic_endings"][1] for m in runs], True, runs[0]["tonic_endings"][0]),
        line("final note length (quarters)", [m["final_note_length"][1] for m in runs], False,
             runs[0]["final_note_length"][0]),
    ]  # fmt: skip
    if all(m["compliance"] for m in runs):
        out.append(line("requested/drawn form honoured", [m["compliance"]["honoured"] for m in runs], True))
    out += [
        line("classifier with structure features (5-fold mean)", [m["classifier"][0] for m in runs], True),
        line("  its sd over folds", [m["classifier"][1] for m in runs], True),
        line("classifier without structure features", [m["classifier_basic"][0] for m in runs], True),
        line("classifier, held-out real vs training (reference)", [m["classifier_real"][0] for m in runs], True),
    ]
    return out


def giveaway_rows(runs: list[dict], top: int = 15) -> list[tuple[str, ...]]:
    """The ``top`` feature columns by mean importance over the runs, with their means and AUC."""
    names = list(runs[0]["giveaways"])
    mean = {n: np.mean([m["giveaways"][n] for m in runs], axis=0) for n in names}
    order = sorted(names, key=lambda n: -mean[n][0])[:top]
    return [(n, f"{mean[n][0]:.3f}", f"{mean[n][1]:.3f}", f"{mean[n][2]:.3f}", f"{mean[n][3]:.2f}") for n in order]


def rows(m: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, held-out real, generated, target, met?) rows of the issue's figure set."""

    def within(value: float, reference: float, share: float) -> str:
        return "yes" if abs(value - reference) <= share * abs(reference) else "no"

    (rr, gr), (rt, gt), (rl, gl) = m["repetition"], m["tonic_endings"], m["final_note_length"]
    table = [
        ("repeated 4-note patterns within a song", f"{rr:.1%}", f"{gr:.1%}", "within ±25% of real", within(gr, rr, 0.25)),
        ("phrase self-similarity (mean best match)", f"{m['phrase_similarity'][0]:.3f}",
         f"{m['phrase_similarity'][1]:.3f}", "", ""),
        ("bar self-similarity (mean off-diagonal)", f"{m['bar_similarity'][0]:.3f}", f"{m['bar_similarity'][1]:.3f}", "", ""),
        ("ends on the tonic", f"{rt:.1%}", f"{gt:.1%}", "within 5 points", "yes" if abs(gt - rt) <= 0.05 else "no"),
        ("final note length, mean (quarters)", f"{rl:.2f}", f"{gl:.2f}", "within 25% of real", within(gl, rl, 0.25)),
        ("final note length, median (quarters)", f"{m['final_note_length_median'][0]:.2f}",
         f"{m['final_note_length_median'][1]:.2f}", "", ""),
        ("phrases per song", f"{m['phrases_per_song'][0]:.2f}", f"{m['phrases_per_song'][1]:.2f}", "", ""),
    ]  # fmt: skip
    if m["compliance"]:
        c = m["compliance"]
        table.append((f"requested form honoured ({c['requested']} melodies)", "", f"{c['honoured']:.1%}", "≥ 95%",
                      "yes" if c["honoured"] >= 0.95 else "no"))  # fmt: skip
    acc, sd = m["classifier"]
    table += [
        ("classifier, generated vs real, with structure features (5 folds)", "", f"{acc:.1%} ± {sd:.1%}", "≤ 60%",
         "yes" if acc <= 0.60 else "no"),
        ("classifier, the same without structure features", "", "{:.1%} ± {:.1%}".format(*m["classifier_basic"]), "", ""),
        ("classifier, held-out real vs training songs (reference)", "{:.1%} ± {:.1%}".format(*m["classifier_real"]),
         "", "", ""),
        ("held-out pitch bits / note (model)", "", f"{m['pitch_bits_per_note']:.3f}", "", ""),
        ("held-out bits / step (model)", "", f"{m['bits_per_step']:.3f}", "", ""),
        ("Yang & Lerch mean overlap area, all 18 features", "", f"{m['overlap']:.3f}", "", ""),
    ]  # fmt: skip
    return table


def multi_markdown(runs: list[dict], command: str) -> str:
    """The results file for several seeds: the summary, the giveaway table, then each seed's table."""
    m = runs[0]
    seeds = [str(r["seed"]) for r in runs]
    lines = [f"# Structure figures of `{m['model']}`" + (f", form {m['form']}" if m["form"] else "")
             + f", {m['evaluation_set']}, seeds {', '.join(seeds)}", "", f"Command: `{command}`", "",
             f"Date {date.today().isoformat()}; machine {platform.machine()} ({platform.system()}, {os.cpu_count()} "
             f"cores, shared), Python {platform.python_version()}; {sum(r['seconds'] for r in runs):.0f} s.", "",
             "| figure | held-out real | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd over seeds |",
             "|---|---:|" + "---:|" * len(seeds) + "---:|"]  # fmt: skip
    lines += [f"| {' | '.join(row)} |" for row in summary_rows(runs)]
    lines += ["", "Giveaways (classifier with structure features; mean over seeds): forest importance, mean "
              "value in real and generated songs, and AUC of the column alone (0.5 = no difference, > 0.5 = "
              "higher in generated songs). interval_histogram[i] is the share of intervals of i − 12 semitones.", "",
              "| feature column | importance | real | generated | AUC |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {' | '.join(row)} |" for row in giveaway_rows(runs)]
    for run in runs:
        lines += ["", "---", "", markdown(run, command, level="##")]
    return "\n".join(lines) + "\n"


def markdown(m: dict, command: str, level: str = "#") -> str:
    lines = [f"{level} Structure figures of `{m['model']}`" + (f", form {m['form']}" if m["form"] else "")
             + f" (seed {m['seed']})", "",
             f"Command: `{command}`", "",
             f"Date {date.today().isoformat()}; machine {platform.machine()} {platform.processor() or ''} "
             f"({platform.system()}, {os.cpu_count()} cores, shared), Python {platform.python_version()}; "
             f"{m['seconds']:.0f} s.", "",
             f"Evaluation set: {m['evaluation_set']} ({m['real_songs']} songs); {m['generated']} generated melodies, "
             f"default `tunesmith generate` settings, one batch per mode/meter/length as `tunesmith evaluate` "
             f"makes them (seed {m['seed']}).", "",
             "| figure | held-out real | generated | target | met |", "|---|---:|---:|---|---|"]  # fmt: skip
    lines += [f"| {' | '.join(row)} |" for row in rows(m)]
    top = ", ".join(f"{name} ({weight:.2f})" for name, weight in m["top_features"])
    finals = [", ".join(f"{d}: {v:.0%}" for d, v in list(s.items())[:5]) for s in m["song_final_degrees"]]
    overlaps = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in m["structure_overlap"].items())
    lines += ["", f"Song-final degrees: real {finals[0]}; generated {finals[1]}.", "",
              f"Yang & Lerch overlap of the structure features: {overlaps}.", "",
              f"Most telling features (forest importances, with structure): {top}.", ""]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/erk.pt", help="checkpoint (models/erk.pt)")
    parser.add_argument("--form", default="", help="ask every melody for this form and check it (\"AABA\")")
    parser.add_argument("--num", type=int, default=0, help="generated melodies; 0 = one per held-out song (0)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="generation and cross-validation seeds; several add their means (0)")
    parser.add_argument("--half", choices=("all", "dev", "test", "calib"), default="all",
                        help="validation songs: all, or the fixed dev or test half; calib: the calibration "
                             "songs, a fixed fifth of the training split (all)")
    parser.add_argument("--name", default="", help="results file name: structure-NAME.md (default: model name)")
    args = parser.parse_args(argv)
    runs = [measure(args.model, args.form, args.num, seed, half=args.half) for seed in args.seed]
    command = "python benchmarks/bench_structure.py " + " ".join(sys.argv[1:] if argv is None else argv)
    name = args.name or Path(args.model).stem + (f"-{re.sub(r'[^A-Za-z0-9]+', '', args.form)}" if args.form else "")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"structure-{name}.md"
    text = markdown(runs[0], command.strip()) if len(runs) == 1 else multi_markdown(runs, command.strip())
    out.write_text(text, encoding="utf-8")
    for measured in runs:
        width = max(len(row[0]) for row in rows(measured))
        print(f"seed {measured['seed']}, {measured['evaluation_set']}")
        print(f"{'figure':<{width}}  {'real':>14}  {'generated':>14}  target")
        for figure, real, generated, target, met in rows(measured):
            print(f"{figure:<{width}}  {real:>14}  {generated:>14}  {target}{f' ({met})' if met else ''}")
    if len(runs) > 1:
        for row in summary_rows(runs):
            print("  ".join(row))
        print("giveaways: feature, importance, real, generated, AUC")
        for row in giveaway_rows(runs):
            print("  ".join(row))
    print(f"\n{sum(r['seconds'] for r in runs):.0f} s; written to {out}")


if __name__ == "__main__":
    main()
