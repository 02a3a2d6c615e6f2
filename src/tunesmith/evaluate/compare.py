"""Generated vs real, feature by feature: the method of Yang & Lerch (2018), "On the evaluation
of generative models in music".

For one feature, every melody is a point (a number or a histogram). The **intra-set** distances
are the Euclidean distances between melodies of one set; the **inter-set** distances are those
between a generated and a real melody. When the generated set sounds like the real one, the
real set's intra-set distances and the inter-set distances follow the same distribution: their
kernel-density **overlap area** is near 1 and their **KL divergence** near 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_POINTS = 512  # density evaluation points between the smallest and largest distance
MAX_DISTANCES = 20000  # distances kept per distribution (random subsample) to bound KDE cost


@dataclass
class CompareConfig:
    """How distance distributions are estimated."""

    max_distances: int = MAX_DISTANCES  # subsample size per distribution; 0 = keep all
    grid_points: int = GRID_POINTS  # KDE evaluation points
    seed: int = 0  # subsampling seed


def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between feature vectors: within ``a`` (each unordered pair once) or ``a``×``b``.

    Parameters
    ----------
    a, b : ndarray, shape (n,) or (n, bins)
        Per-melody feature values.

    Returns
    -------
    ndarray of float, shape (pairs,)
        ``n(n−1)/2`` intra-set distances when ``b`` is None, else ``len(a)·len(b)`` inter-set ones.
    """
    from scipy.spatial.distance import cdist, pdist

    a = np.asarray(a, dtype=float).reshape(len(a), -1)
    if b is None:
        return pdist(a)
    return cdist(a, np.asarray(b, dtype=float).reshape(len(b), -1)).ravel()


def kde(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``samples`` on ``grid`` (Scott's bandwidth, never zero).

    Returns
    -------
    ndarray of float, shape like ``grid``
        A density that integrates to ≈ 1 over a grid wide enough to hold the samples.
    """
    samples = np.asarray(samples, dtype=float)
    spread = samples.std() if len(samples) > 1 else 0.0
    span = grid[-1] - grid[0] if len(grid) > 1 else 1.0
    # A constant sample (every distance 0) still needs a kernel width to be a density.
    bandwidth = max(spread * len(samples) ** (-1 / 5), 1e-3 * max(span, 1e-9), 1e-6)
    density = np.zeros_like(grid)
    for chunk in np.array_split(samples, max(1, len(samples) // 2048)):
        density += np.exp(-0.5 * ((grid[:, None] - chunk[None, :]) / bandwidth) ** 2).sum(1)
    return density / (len(samples) * bandwidth * np.sqrt(2 * np.pi))


def density_grid(*samples: np.ndarray, points: int = GRID_POINTS) -> np.ndarray:
    """A common evaluation grid covering all samples with a margin on both sides."""
    low = min(float(s.min()) for s in samples)
    high = max(float(s.max()) for s in samples)
    margin = 0.1 * (high - low) or 1.0
    return np.linspace(low - margin, high + margin, points)


def overlap_area(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
    """Area under min(p, q): 1 for identical densities, 0 for disjoint ones."""
    return float(np.clip(np.trapezoid(np.minimum(p, q), grid), 0.0, 1.0))


def kl_divergence(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
    """KL(p ‖ q) in nats of two densities on ``grid`` (both renormalised, q floored to stay finite)."""
    dx = grid[1] - grid[0]
    p = p * dx / max((p * dx).sum(), 1e-300)
    q = np.maximum(q * dx / max((q * dx).sum(), 1e-300), 1e-10)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _subsample(values: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(values, limit, replace=False) if limit and len(values) > limit else values


def compare_feature(real: np.ndarray, generated: np.ndarray, config: CompareConfig | None = None) -> dict:
    """Yang & Lerch statistics of one feature.

    Parameters
    ----------
    real, generated : ndarray, shape (n,) or (n, bins)
        The feature for each real and each generated melody (at least two of each).

    Returns
    -------
    dict
        ``real``/``generated`` (mean and sd of the feature's intra-set distances), ``inter``
        (same for inter-set), ``overlap`` and ``kl`` of the real intra-set vs the inter-set
        distance densities, ``overlap_intra`` (real vs generated intra-set densities) and
        ``curves`` (grid and the three densities, for plotting).
    """
    config = config or CompareConfig()
    if len(real) < 2 or len(generated) < 2:
        raise ValueError(f"need at least two melodies per set, got {len(real)} real and {len(generated)} generated")
    rng = np.random.default_rng(config.seed)
    intra_real = _subsample(pairwise_distances(real), config.max_distances, rng)
    intra_gen = _subsample(pairwise_distances(generated), config.max_distances, rng)
    inter = _subsample(pairwise_distances(generated, real), config.max_distances, rng)
    grid = density_grid(intra_real, intra_gen, inter, points=config.grid_points)
    p_real, p_gen, p_inter = kde(intra_real, grid), kde(intra_gen, grid), kde(inter, grid)

    def stats(values: np.ndarray) -> dict:
        return {"mean": float(values.mean()), "sd": float(values.std())}

    return {
        "real": stats(intra_real),
        "generated": stats(intra_gen),
        "inter": stats(inter),
        "overlap": overlap_area(p_real, p_inter, grid),
        "kl": kl_divergence(p_real, p_inter, grid),
        "overlap_intra": overlap_area(p_real, p_gen, grid),
        "curves": {"grid": grid, "real": p_real, "generated": p_gen, "inter": p_inter},
    }


def compare_sets(real: dict[str, np.ndarray], generated: dict[str, np.ndarray],
                 config: CompareConfig | None = None) -> dict:  # fmt: skip
    """Compare every feature of two feature tables (see :func:`tunesmith.evaluate.metrics.feature_table`).

    Returns
    -------
    dict
        ``features``: name → :func:`compare_feature` result; ``summary``: mean overlap area and
        mean KL divergence over features (overlap 1 / KL 0 = indistinguishable sets).
    """
    features = {name: compare_feature(real[name], generated[name], config) for name in real}
    overlaps = [f["overlap"] for f in features.values()]
    kls = [f["kl"] for f in features.values()]
    return {"features": features, "summary": {"overlap": float(np.mean(overlaps)), "kl": float(np.mean(kls))}}
