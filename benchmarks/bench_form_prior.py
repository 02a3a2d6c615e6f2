"""Code length of song forms under the form prior (``tunesmith.form.prior``), by part.

Two figures per part (phrase count, labels, lengths) in bits per song:

- **calib**: the prior fitted on the training songs *outside* the calibration fifth of erk's
  training songs (``evaluate.pipeline.calibration_group``) and scored on that fifth — where the
  prior's design was chosen, so no validation song is looked at while choosing it;
- **val**: the prior fitted on every training song (as validation does during training) and
  scored on the validation songs: the ``prior_bits_per_song`` of the two-stage figures.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_form_prior.py [--model models/erk.pt]
"""

from __future__ import annotations

import argparse
import json
import statistics

from tunesmith.checkpoint import Checkpoint
from tunesmith.corpus import prepare
from tunesmith.evaluate.pipeline import calibration_group
from tunesmith.form.prior import fit_prior, form_bits, song_form_code

PARTS = ("count", "labels", "lengths", "total")


def mean_bits(train: list, scored: list) -> dict[str, float]:
    """Mean bits per song of ``scored``'s forms, by part, under the prior fitted on ``train``."""
    prior = fit_prior([song_form_code(song) for song in train])
    bits = [form_bits(prior, song_form_code(song)) for song in scored]
    return {part: round(statistics.mean(b[part] for b in bits), 3) for part in PARTS} | {"songs": len(scored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/erk.pt", help="the checkpoint whose training corpus and split to use")
    args = parser.parse_args()
    config = Checkpoint.load(args.model).training_config()
    dataset = prepare(config.corpus, config.encoding, progress=False)
    train = dataset.split("train")
    calib = [e.song for e in train if calibration_group(e.group) and not e.extra]
    rest = [e.song for e in train if not calibration_group(e.group)]
    result = {"calib": mean_bits(rest, calib), "val": mean_bits([e.song for e in train], [e.song for e in dataset.split("val")])}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
