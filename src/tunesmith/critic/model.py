"""The critic: how song-like a melody is, judged by a forest that learned the model's own giveaways.

Fitted once per model (``tunesmith critic MODEL``): the model composes one melody in the shape
of each of its training songs (mode, meter, length; the calibration fifth left out, so the
settings screen of ``benchmarks/bench_settings.py`` stays clean), and a random forest learns to
tell those melodies from the songs by the features of :mod:`tunesmith.evaluate.metrics`
(note-level statistics and the structure features: repetition, self-similarity, endings). Its
probability that a melody is a song is what generation keeps the best of a few candidates by
(``--candidates``, :mod:`tunesmith.generate.batch`): a melody with a giveaway the forest has
learned — a range wider than the songs', too little restatement — loses to its sibling.
Selection among samples by a learned critic is discriminator rejection sampling in its
simplest form (Azadi et al., 2019). No held-out song is seen by the critic.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tunesmith.critic.forest import Forest
from tunesmith.errors import TunesmithError
from tunesmith.settings import bounds, check_fields

EXTRA_KEY = "critic"


@dataclass
class CriticConfig:
    """Fitting the critic of a model (``tunesmith critic``)."""

    trees: int = field(default=100, metadata=bounds(1, 10_000))  # trees of the forest (100 and 300 judged alike on the calibration songs)
    min_leaf: int = field(default=5, metadata=bounds(1, 10_000))  # fewest training melodies in a leaf: smoother probabilities
    seed: int = field(default=0, metadata=bounds(0, 2**32 - 1))  # the melodies' seeds and the forest's
    songs: int = field(default=0, metadata=bounds(0, 1_000_000))  # training songs to fit on, 0 = all but the calibration fifth

    def validate(self) -> CriticConfig:
        check_fields(self)
        return self


@dataclass
class Critic:
    """A fitted critic: the forest, the feature columns it reads and how it was fitted."""

    forest: Forest
    columns: list[str]  # feature column names (evaluate.classifier.feature_names), in order
    fitted: dict[str, Any]  # songs, melodies, trees, out-of-bag accuracy, seconds, settings

    def score(self, songs: list) -> np.ndarray:
        """Each song's probability of being a real song by the critic (pure: same songs, same numbers)."""
        from tunesmith.evaluate.classifier import feature_names
        from tunesmith.evaluate.metrics import feature_matrix, feature_table

        if not songs:
            return np.zeros(0)
        table = feature_table(songs)
        names = feature_names(table)
        if names != self.columns:
            raise TunesmithError("the critic was fitted on other melody features than this version computes; "
                                 "fit it again with: tunesmith critic MODEL")  # fmt: skip
        return self.forest.predict(feature_matrix(table))

    def to_plain(self) -> dict[str, Any]:
        return {"forest": self.forest.to_plain(), "columns": list(self.columns), "fitted": dict(self.fitted)}

    @classmethod
    def from_plain(cls, data: Any) -> Critic:
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise TunesmithError("the checkpoint's critic is damaged (no feature columns)")
        forest = Forest.from_plain(data.get("forest"))
        if len(data["columns"]) != forest.columns:
            raise TunesmithError("the checkpoint's critic is damaged (columns and forest disagree)")
        return cls(forest, [str(c) for c in data["columns"]], dict(data.get("fitted") or {}))


def critic_of(checkpoint: Any) -> Critic | None:
    """The critic stored in a checkpoint (a ``Checkpoint`` or its dict), None when it has none."""
    extra = checkpoint.get("extra", {}) if isinstance(checkpoint, dict) else checkpoint.extra
    entry = (extra or {}).get(EXTRA_KEY)
    return None if entry is None else Critic.from_plain(entry)


def training_songs(checkpoint: Any, limit: int = 0) -> list:
    """The songs a critic is fitted on: the checkpoint's training songs (no augmented copies)
    outside the calibration fifth; the first ``limit`` of them when ``limit`` > 0."""
    from tunesmith.corpus import prepare
    from tunesmith.evaluate.pipeline import calibration_group

    config = checkpoint.training_config()
    dataset = prepare(config.corpus, config.encoding, progress=False)
    songs = [e.song for e in dataset.split("train") if not e.extra and not calibration_group(e.group)]
    if not songs:
        raise TunesmithError("the model's training split has no songs to fit a critic on")
    return songs[:limit] if limit else songs


def fit_critic(generator: Any, songs: list, config: CriticConfig | None = None, progress: bool = False) -> Critic:
    """Fit a critic: one melody of ``generator`` in the shape of each of ``songs`` (one candidate
    each, the model's raw output under the other default settings), then a forest telling those
    melodies (class 0) from the songs (class 1), the classes weighted alike."""
    from sklearn.ensemble import RandomForestClassifier

    from tunesmith.evaluate.classifier import feature_names
    from tunesmith.evaluate.metrics import feature_matrix, feature_table
    from tunesmith.evaluate.pipeline import generate_melody_set

    config = (config or CriticConfig()).validate()
    started = time.perf_counter()
    melodies = generate_melody_set(generator, songs, len(songs), 0, config.seed, progress, settings={"candidates": 1})
    real, fake = feature_table(songs), feature_table([m.song for m in melodies])
    matrix = np.vstack([feature_matrix(real), feature_matrix(fake)])
    labels = np.r_[np.ones(len(songs)), np.zeros(len(melodies))]
    forest = RandomForestClassifier(n_estimators=config.trees, min_samples_leaf=config.min_leaf,
                                    class_weight="balanced", oob_score=True, random_state=config.seed, n_jobs=1)  # fmt: skip
    with warnings.catch_warnings():  # a handful of trees leaves some rows without an out-of-bag vote: fine here
        warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")
        forest.fit(matrix, labels)
    fitted = {"songs": len(songs), "melodies": len(melodies), "out_of_bag_accuracy": round(float(forest.oob_score_), 4),
              "seconds": round(time.perf_counter() - started, 1), "settings": asdict(config)}  # fmt: skip
    return Critic(Forest.from_sklearn(forest), feature_names(real), fitted)
