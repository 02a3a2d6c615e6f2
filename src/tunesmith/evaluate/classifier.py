"""Passes as human? A cross-validated classifier tries to tell generated from real melodies.

It sees only the per-melody features of :mod:`tunesmith.evaluate.metrics` and (unless
``structure`` is off) those of :mod:`tunesmith.evaluate.structure`: repetition within the song,
self-similarity, the final note and the phrase endings. Accuracy near 50 %
means the features cannot separate the sets; near 100 % means the generated melodies are
statistically unlike human ones (the feature importances say in what way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunesmith.evaluate.metrics import feature_matrix


@dataclass
class ClassifierConfig:
    """The discriminator."""

    kind: str = "forest"  # forest (random forest) | logistic (standardised logistic regression)
    folds: int = 5  # cross-validation folds (stratified)
    trees: int = 200  # random-forest size
    seed: int = 0  # fold shuffling, balancing and forest seed
    structure: bool = True  # also the structure features (repetition, self-similarity, endings)


def select_features(table: dict[str, np.ndarray], structure: bool = True) -> dict[str, np.ndarray]:
    """The feature table with (``structure=True``) or without the structure features."""
    from tunesmith.evaluate.structure import STRUCTURE_FEATURES

    return dict(table) if structure else {k: v for k, v in table.items() if k not in STRUCTURE_FEATURES}


def feature_names(table: dict[str, np.ndarray]) -> list[str]:
    """One name per column of :func:`~tunesmith.evaluate.metrics.feature_matrix` (``name[bin]`` for histograms)."""
    names = []
    for name, values in table.items():
        width = values.reshape(len(values), -1).shape[1]
        names += [name] if values.ndim == 1 else [f"{name}[{i}]" for i in range(width)]
    return names


def _estimator(config: ClassifierConfig):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if config.kind == "forest":
        return RandomForestClassifier(n_estimators=config.trees, random_state=config.seed, n_jobs=1)
    if config.kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    raise ValueError(f"classifier kind must be 'forest' or 'logistic', got {config.kind!r}")


def discriminate(real: dict[str, np.ndarray], generated: dict[str, np.ndarray],
                 config: ClassifierConfig | None = None) -> dict:  # fmt: skip
    """Cross-validated accuracy of telling generated from real melodies by their features.

    Parameters
    ----------
    real, generated : dict of name → ndarray
        Feature tables (:func:`~tunesmith.evaluate.metrics.feature_table`). The larger set is
        randomly cut to the size of the smaller so that chance is exactly 50 %. With
        ``config.structure`` off the structure features are left out.

    Returns
    -------
    dict
        ``accuracy`` (mean over folds), ``sd`` (standard deviation over folds), ``folds``,
        ``per_set`` (melodies per class), ``kind``, ``structure`` (features used) and
        ``top_features`` (forest only: the five
        most important feature columns with their importance) and ``importances`` (forest only:
        every column's importance, in column order).
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    config = config or ClassifierConfig()
    real, generated = select_features(real, config.structure), select_features(generated, config.structure)
    x_real, x_gen = feature_matrix(real), feature_matrix(generated)
    size = min(len(x_real), len(x_gen))
    folds = min(config.folds, size)
    if folds < 2:
        raise ValueError(f"need at least two melodies per set to cross-validate, "
                         f"got {len(x_real)} real and {len(x_gen)} generated")
    rng = np.random.default_rng(config.seed)
    x_real = x_real[rng.choice(len(x_real), size, replace=False)]
    x_gen = x_gen[rng.choice(len(x_gen), size, replace=False)]
    x = np.concatenate([x_real, x_gen])
    y = np.concatenate([np.zeros(size, int), np.ones(size, int)])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    scores = cross_val_score(_estimator(config), x, y, cv=splitter)
    result = {"accuracy": float(scores.mean()), "sd": float(scores.std()), "folds": folds,
              "per_set": size, "kind": config.kind, "structure": config.structure, "top_features": [], "importances": []}  # fmt: skip
    if config.kind == "forest":
        model = _estimator(config).fit(x, y)
        order = np.argsort(model.feature_importances_)[::-1][:5]
        names = feature_names(real)
        result["top_features"] = [[names[i], round(float(model.feature_importances_[i]), 4)] for i in order]
        result["importances"] = [[name, float(w)] for name, w in zip(names, model.feature_importances_)]
    return result
