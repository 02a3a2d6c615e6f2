"""Yang & Lerch set comparison: distances, densities, overlap and KL."""

import numpy as np
import pytest

from tunesmith.evaluate import compare


def test_pairwise_distances_counts_and_values():
    a = np.array([0.0, 3.0, 4.0])
    np.testing.assert_allclose(np.sort(compare.pairwise_distances(a)), [1.0, 3.0, 4.0])
    b = np.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(compare.pairwise_distances(b, b), [0.0, 5.0, 5.0, 0.0])


def test_kde_integrates_to_one_even_for_a_constant_sample():
    grid = np.linspace(-5, 5, 2001)
    for samples in (np.random.default_rng(0).normal(size=500), np.zeros(50)):
        assert np.trapezoid(compare.kde(samples, grid), grid) == pytest.approx(1.0, abs=1e-3)


def test_identical_sets_overlap_almost_fully():
    values = np.random.default_rng(1).normal(size=(120, 3))
    result = compare.compare_feature(values, values.copy())
    assert result["overlap"] > 0.95
    assert result["overlap_intra"] == pytest.approx(1.0)
    assert result["kl"] < 0.02


def test_distant_sets_barely_overlap():
    rng = np.random.default_rng(2)
    real, generated = rng.normal(size=100), rng.normal(size=100) + 50.0
    result = compare.compare_feature(real, generated)
    assert result["overlap"] < 0.01
    assert result["kl"] > 5.0
    assert result["inter"]["mean"] == pytest.approx(50.0, abs=1.0)


def test_overlap_area_and_kl_of_known_densities():
    grid = np.linspace(-10, 10, 4001)
    p = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    q = np.exp(-0.5 * (grid - 1) ** 2) / np.sqrt(2 * np.pi)
    assert compare.overlap_area(p, p, grid) == pytest.approx(1.0, abs=1e-6)
    # Two unit normals one sd apart: overlap 2Φ(−1/2) ≈ 0.617, KL = 1/2 nat.
    assert compare.overlap_area(p, q, grid) == pytest.approx(0.6171, abs=1e-3)
    assert compare.kl_divergence(p, q, grid) == pytest.approx(0.5, abs=1e-3)


def test_compare_sets_summarises_every_feature():
    rng = np.random.default_rng(3)
    real = {"a": rng.normal(size=40), "b": rng.random((40, 4))}
    result = compare.compare_sets(real, {k: v.copy() for k, v in real.items()})
    assert set(result["features"]) == {"a", "b"}
    assert result["summary"]["overlap"] > 0.9


def test_compare_needs_two_melodies_per_set():
    with pytest.raises(ValueError, match="at least two"):
        compare.compare_feature(np.zeros(1), np.zeros(5))
