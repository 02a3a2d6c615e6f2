"""Form figures of a melody model (issue 10): held-out likelihood and generated structure vs real.

For each ``--model``:

- held-out (validation split) bits/step and pitch bits/note, and for a form-aware model the
  same with every song's form hidden (the model's "form unknown" input) — the form of a real
  song is read from the song itself (its phrases and their letters), so "form given" scores
  p(melody | its form), "form hidden" p(melody);
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
from tunesmith.generate import GenerationConfig, Generator
from tunesmith.likelihood import evaluate_model

FORMS = ["AABA", "AABB", "ABAC", "A A' B A"]


class FormHidden(torch.nn.Module):
    """A form-aware model scored with every song's form unknown."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, *args, form=None, **kwargs):
        return self.inner(*args, form=None, **kwargs)


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


def likelihood(checkpoint: Checkpoint, model, val, spq: int) -> dict:
    vocab = Vocabulary(checkpoint.vocab)
    result = {}
    given = evaluate_model(model, val, vocab, checkpoint.modes, checkpoint.meters, spq)
    result["bits_per_step"], result["pitch_bits_per_note"] = given["bits_per_step"], given["pitch_bits_per_note"]
    if getattr(model, "form_inputs", False):
        hidden = evaluate_model(FormHidden(model), val, vocab, checkpoint.modes, checkpoint.meters, spq)
        result["hidden_bits_per_step"] = hidden["bits_per_step"]
        result["hidden_pitch_bits_per_note"] = hidden["pitch_bits_per_note"]
    return result


def bench(path: str, dataset, num: int) -> dict:
    checkpoint = Checkpoint.load(path)
    generator = Generator(checkpoint.build_model("cpu"), checkpoint, torch.device("cpu"), path)
    torch.set_num_threads(1)
    val = dataset.split("val")
    result = {"model": path, **likelihood(checkpoint, generator.model, val, dataset.steps_per_quarter)}
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
    args = parser.parse_args()
    results = []
    for path in args.model:
        config = Checkpoint.load(path).training_config()
        dataset = prepare(config.corpus, config.encoding, progress=False)
        results.append(bench(path, dataset, args.num))
        print(json.dumps(results[-1], indent=1, default=str), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, default=str)
    print("model | bits/step | pitch bits/note | hidden form: bits/step, pitch | repetition | tonic end | final q |"
          " classifier | compliance | steps/s")  # fmt: skip
    for r in results:
        g = r["generated"]
        print(f"{r['model']} | {r['bits_per_step']:.3f} | {r['pitch_bits_per_note']:.3f} | "
              f"{r.get('hidden_bits_per_step', float('nan')):.3f}, {r.get('hidden_pitch_bits_per_note', float('nan')):.3f}"
              f" | {g['repetition']:.3f} (real {r['real']['repetition']:.3f}) | {g['tonic_endings']:.2f} "
              f"(real {r['real']['tonic_endings']:.2f}) | {g['final_quarters']:.2f} (real {r['real']['final_quarters']:.2f})"
              f" | {r['classifier']['accuracy']:.3f} | {statistics.mean(r['compliance'].values()):.3f} | "
              f"{r['steps_per_second']}")  # fmt: skip


if __name__ == "__main__":
    main()
