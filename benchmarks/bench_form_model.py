"""Form figures of a melody model (issue 10): held-out likelihood and generated structure vs real.

For each ``--model``:

- held-out (validation split) bits/step and pitch bits/note, and for a form-aware model the
  same with every song's form hidden (the model's "form unknown" input) and the two-stage
  figures — the form of a real song is read from the song itself (its phrases and their
  letters), so "form given" scores p(melody | its form), "form hidden" p(melody) from the model
  alone, and "two-stage" adds the form's code length under a prior fitted on the training songs
  (``tunesmith.form.prior``): −log2 [p_prior(form) · p(melody | form)], an upper bound on the
  melody's code length under tunesmith's own process (a form, then the notes); bits/step adds
  the prior bits to the total, pitch bits/note charges all of them to pitch (conservative);
- one melody per validation song, in its meter and mode, with the default ``tunesmith
  generate`` settings (a form-aware model draws its form from the corpus; others compose 16
  bars), seed = index: repetition share of 4-note patterns (``form.repetition``), share ending
  on the tonic, mean final-note length in quarters, against the validation songs;
- a random forest telling generated from held-out real by the evaluation features plus four
  structure features (repetition share, tonic ending, final-note length, length in bars);
- compliance (``form.compliance``) of ``--num`` melodies per requested form (AABA, AABB,
  ABAC, A A' B A) in 4/4 major, 8 bars;
- one-melody speed: steps per second of a 64-bar melody (best of 3).

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_form_model.py --model models/erk.pt [--model old.pt]
[--likelihood-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from tunesmith.checkpoint import Checkpoint
from tunesmith.corpus import prepare
from tunesmith.encoding import Vocabulary
from tunesmith.evaluate.classifier import discriminate
from tunesmith.evaluate.metrics import feature_table
from tunesmith.form import compliance, repetition, song_phrases
from tunesmith.form.prior import fit_prior, song_form_code
from tunesmith.form.prior import form_bits as form_bits_of
from tunesmith.generate import GenerationConfig, Generator
from tunesmith.training.validation import prior_bits, validation_metrics

FORMS = ["AABA", "AABB", "ABAC", "A A' B A"]


def ending(song) -> tuple[bool, float]:
    """Whether the last sounding note is the tonic, and its length in quarters."""
    last = song_phrases(song)[-1]
    return last.final_degree == "1", last.final_steps / song.steps_per_quarter


def structure(songs) -> dict[str, float]:
    ends = [ending(s) for s in songs]
    return {
        "repetition": float(np.mean([repetition(s) for s in songs])),
        "tonic_endings": float(np.mean([e[0] for e in ends])),
        "final_quarters": float(np.mean([e[1] for e in ends])),
        "bars": float(np.mean([s.total_steps / (s.steps_per_quarter * 4) for s in songs])),
    }


def features(songs) -> dict[str, np.ndarray]:
    table = feature_table(songs)
    ends = [ending(s) for s in songs]
    table["repetition"] = np.array([repetition(s) for s in songs])
    table["tonic_ending"] = np.array([float(e[0]) for e in ends])
    table["final_quarters"] = np.array([e[1] for e in ends])
    table["length_quarters"] = np.array([s.total_steps / s.steps_per_quarter for s in songs])
    return table


LIKELIHOOD_KEYS = ("bits_per_step", "pitch_bits_per_note", "hidden_bits_per_step", "hidden_pitch_bits_per_note",
                   "prior_bits_per_song", "two_stage_bits_per_step", "two_stage_pitch_bits_per_note")  # fmt: skip


def likelihood(checkpoint: Checkpoint, model, dataset) -> dict:
    """Validation figures: form given, form hidden and two-stage (see the module docstring)."""
    val = dataset.split("val")
    form_bits = prior_bits(dataset.split("train"), val) if getattr(model, "form_inputs", False) else None
    metrics = validation_metrics(model, val, Vocabulary(checkpoint.vocab), checkpoint.modes, checkpoint.meters,
                                 dataset.steps_per_quarter, "cpu", form_bits)  # fmt: skip
    result = {key: metrics[key] for key in LIKELIHOOD_KEYS if key in metrics}
    if form_bits is not None:  # the prior's code length per song, by part
        prior = fit_prior([song_form_code(e.song) for e in dataset.split("train")])
        parts = [form_bits_of(prior, song_form_code(e.song)) for e in val]
        result["prior_bits_parts"] = {k: float(np.mean([p[k] for p in parts])) for k in ("count", "labels", "lengths")}
    return result


def bench(path: str, dataset, num: int, likelihood_only: bool = False) -> dict:
    checkpoint = Checkpoint.load(path)
    generator = Generator(checkpoint.build_model("cpu"), checkpoint, torch.device("cpu"), path)
    torch.set_num_threads(1)
    val = dataset.split("val")
    result = {"model": path, **likelihood(checkpoint, generator.model, dataset)}
    if likelihood_only:
        return result
    real = [e.song for e in val if e.song.meter in generator.meters]
    generated, started, steps = [], time.perf_counter(), 0
    for index, song in enumerate(real):
        melody = generator.generate(GenerationConfig(mode=song.mode, meter=song.meter, seed=index, max_copy=0))[0]
        generated.append(melody.song)
        steps += melody.song.total_steps
    result["generate_seconds"] = round(time.perf_counter() - started, 1)
    result["real"], result["generated"] = structure(real), structure(generated)
    forest = discriminate(features(real), features(generated))
    result["classifier"] = {"accuracy": forest["accuracy"], "sd": forest["sd"], "top": forest.get("top_features")}
    result["compliance"] = {}
    for form in FORMS:
        ok = 0
        for seed in range(num):
            melody = generator.generate(GenerationConfig(form=form, bars=8, seed=seed, max_copy=0))[0]
            ok += compliance(melody.song, form).ok
        result["compliance"][form] = ok / num
    times = []
    for seed in range(3):
        started = time.perf_counter()
        melody = generator.generate(GenerationConfig(bars=64, seed=seed, max_copy=0))[0]
        times.append(melody.song.total_steps / (time.perf_counter() - started))
    result["steps_per_second"] = round(max(times))
    result["form_example"] = generator.generate(GenerationConfig(seed=0, max_copy=0))[0].params.get("form")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--num", type=int, default=100, help="melodies per requested form")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--likelihood-only", action="store_true", help="only the held-out likelihood figures")
    args = parser.parse_args()
    results = []
    for path in args.model:
        config = Checkpoint.load(path).training_config()
        dataset = prepare(config.corpus, config.encoding, progress=False)
        results.append(bench(path, dataset, args.num, args.likelihood_only))
        print(json.dumps(results[-1], indent=1, default=str), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, default=str)
    print("model | form given: bits/step, pitch bits/note | two-stage (prior bits/song) | form hidden | repetition |"
          " tonic end | final q | classifier | compliance | steps/s")  # fmt: skip
    nan = float("nan")
    for r in results:
        if "generated" not in r:
            print(f"{r['model']} | {r['bits_per_step']:.3f}, {r['pitch_bits_per_note']:.3f} | "
                  f"{r.get('two_stage_bits_per_step', nan):.3f}, {r.get('two_stage_pitch_bits_per_note', nan):.3f} "
                  f"({r.get('prior_bits_per_song', nan):.1f}) | "
                  f"{r.get('hidden_bits_per_step', nan):.3f}, {r.get('hidden_pitch_bits_per_note', nan):.3f}")
            continue
        g = r["generated"]
        print(f"{r['model']} | {r['bits_per_step']:.3f}, {r['pitch_bits_per_note']:.3f} | "
              f"{r.get('two_stage_bits_per_step', nan):.3f}, {r.get('two_stage_pitch_bits_per_note', nan):.3f} "
              f"({r.get('prior_bits_per_song', nan):.1f}) | "
              f"{r.get('hidden_bits_per_step', nan):.3f}, {r.get('hidden_pitch_bits_per_note', nan):.3f}"
              f" | {g['repetition']:.3f} (real {r['real']['repetition']:.3f}) | {g['tonic_endings']:.2f} "
              f"(real {r['real']['tonic_endings']:.2f}) | {g['final_quarters']:.2f} (real {r['real']['final_quarters']:.2f})"
              f" | {r['classifier']['accuracy']:.3f} | {statistics.mean(r['compliance'].values()):.3f} | "
              f"{r['steps_per_second']}")  # fmt: skip


if __name__ == "__main__":
    main()
