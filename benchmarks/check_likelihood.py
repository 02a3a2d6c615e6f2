"""Held-out likelihood of checkpoints on the erk preset's validation songs as the reader reads them now.

The figures the training loop prints each epoch (pitch bits/note given the form, with the form
hidden, and two-stage: the form's code length under the training songs' form prior added), for
any checkpoint: so a model trained before a change to the reader can be scored on the songs as
they are read today, beside one trained after it.

Run: PYTHONPATH=src .venv/bin/python benchmarks/check_likelihood.py models/erk.pt [other.pt ...]
"""

from __future__ import annotations

import argparse

import torch

from tunesmith.checkpoint import Checkpoint
from tunesmith.config import load_preset
from tunesmith.corpus import prepare
from tunesmith.training.validation import prior_bits, validation_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--preset", default="erk")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_preset(args.preset)
    dataset = prepare(config.corpus, config.encoding, progress=False)
    train, val = dataset.split("train"), dataset.split("val")
    prior = prior_bits(train, val)
    print(f"{len(val)} validation songs, {len(train)} training songs (for the form prior)")
    for path in args.checkpoints:
        checkpoint = Checkpoint.load(path)
        model = checkpoint.build_model("cpu").eval()
        m = validation_metrics(model, val, dataset.vocab, checkpoint.modes, checkpoint.meters,
                               dataset.steps_per_quarter, "cpu", prior)  # fmt: skip
        print(f"{path}: pitch bits/note {m['pitch_bits_per_note']:.3f} given the form, "
              f"{m.get('two_stage_pitch_bits_per_note', float('nan')):.3f} two-stage, "
              f"{m.get('hidden_pitch_bits_per_note', float('nan')):.3f} form hidden; bits/step {m['bits_per_step']:.3f}")


if __name__ == "__main__":
    main()
