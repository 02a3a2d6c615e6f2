"""A fitted random forest as plain arrays: stored in a checkpoint as tensors, scored with NumPy.

scikit-learn fits the forest (:meth:`Forest.from_sklearn`); a checkpoint may not hold a pickled
estimator (loading one could run code), so the trees are kept as their node arrays — the split
feature and threshold, the two children and the positive class's share at each node — and
walked here, all trees and all songs at once, one level per NumPy step. The probabilities are
scikit-learn's ``predict_proba`` to the last bit (same float32 features, same comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesmith.errors import TunesmithError

_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")


@dataclass(frozen=True)
class Forest:
    """Every tree's nodes in one set of arrays; node ``n`` of the whole forest.

    ``feature[n]`` is the column a split node tests (-1 at a leaf), going left when the value is
    ``<= threshold[n]``; ``left``/``right`` are forest-wide node numbers; ``value[n]`` the share
    of the positive class among the training rows reaching ``n`` (class weights applied);
    ``roots`` each tree's first node; ``depth`` the deepest leaf's depth.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    columns: int

    @classmethod
    def from_sklearn(cls, forest: Any, positive: int = 1) -> Forest:
        """The trees of a fitted ``RandomForestClassifier``; ``value`` is the share of class ``positive``."""
        column = list(forest.classes_).index(positive)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
        offset, depth = 0, 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            leaf = tree.children_left < 0
            counts = tree.value[:, 0, :]
            parts["feature"].append(np.where(leaf, -1, tree.feature).astype(np.int32))
            parts["threshold"].append(tree.threshold.astype(np.float64))
            parts["left"].append(np.where(leaf, -1, tree.children_left + offset).astype(np.int32))
            parts["right"].append(np.where(leaf, -1, tree.children_right + offset).astype(np.int32))
            parts["value"].append((counts[:, column] / counts.sum(axis=1)).astype(np.float64))
            parts["roots"].append(np.array([offset], dtype=np.int32))
            offset += tree.node_count
            depth = max(depth, int(tree.max_depth))
        arrays = {name: np.concatenate(values) for name, values in parts.items()}
        return cls(**arrays, depth=depth, columns=int(forest.n_features_in_))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """The positive class's probability for each row of ``matrix`` [songs, columns]: the mean
        over trees of the share at the leaf the row reaches (``predict_proba``'s column)."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[1] != self.columns:
            raise TunesmithError(f"the critic scores {self.columns} feature columns, got an array of shape {matrix.shape}")
        values = matrix.astype(np.float32).astype(np.float64)  # scikit-learn's trees compare float32 features
        rows = np.arange(len(values))[:, None]
        nodes = np.broadcast_to(self.roots, (len(values), len(self.roots))).copy()
        for _ in range(self.depth):
            feature = self.feature[nodes]
            split = feature >= 0
            if not split.any():
                break
            go_left = values[rows, np.maximum(feature, 0)] <= self.threshold[nodes]
            nodes = np.where(split, np.where(go_left, self.left[nodes], self.right[nodes]), nodes)
        return np.cumsum(self.value[nodes], axis=1)[:, -1] / len(self.roots)  # tree by tree, as scikit-learn sums

    def to_plain(self) -> dict[str, Any]:
        """Tensors and ints for a checkpoint (``torch.load(weights_only=True)`` reads them back)."""
        import torch

        return {name: torch.from_numpy(np.ascontiguousarray(getattr(self, name))) for name in _ARRAYS} | {
            "depth": self.depth, "columns": self.columns}  # fmt: skip

    @classmethod
    def from_plain(cls, data: Any) -> Forest:
        """The forest :meth:`to_plain` wrote, checked (a damaged entry is a one-line TunesmithError)."""
        try:
            arrays = {name: np.asarray(data[name].numpy() if hasattr(data[name], "numpy") else data[name])
                      for name in _ARRAYS}  # fmt: skip
            forest = cls(**arrays, depth=int(data["depth"]), columns=int(data["columns"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TunesmithError(f"the checkpoint's critic is damaged ({type(exc).__name__}: {exc})") from None
        nodes = len(forest.feature)
        same = all(len(getattr(forest, name)) == nodes for name in ("threshold", "left", "right", "value"))
        inside = lambda a: a.size == 0 or (a.min() >= -1 and a.max() < nodes)  # noqa: E731
        if not same or not len(forest.roots) or not all(inside(a) for a in (forest.left, forest.right, forest.roots)) \
                or (forest.feature >= forest.columns).any():  # fmt: skip
            raise TunesmithError("the checkpoint's critic is damaged (its node arrays do not fit together)")
        return forest
