"""Humanized playback: pure functions that turn the notated grid into a performance.

* timing drifts rather than jitters: an AR(1) process of onset offsets (:func:`drift`);
* velocity follows the metric accent and an arch over each phrase (:func:`velocities`);
* the last bar slows down a little (:func:`ritardando`).

All of it is applied to MIDI/WAV only and is deterministic for a given seed; the written score
never changes. ``amount`` 0 gives the plain grid with metric accents, 1 a loose, expressive player.
"""

from __future__ import annotations

import math

import numpy as np

DRIFT_MS = 30.0  # stationary standard deviation of the onset offset at amount 1, in milliseconds
DRIFT_PHI = 0.85  # AR(1) coefficient between successive onsets: near 1 drifts, near 0 jitters
ARCH = 14.0  # velocity added at the top of a phrase arch at amount 1 (the ends get -ARCH/2)
SCATTER = 4.0  # standard deviation of the velocity's random part at amount 1
RITARDANDO = 0.3  # the last note's local slowing at amount 1: 30 % longer than in tempo


def drift(count: int, amount: float, rng: np.random.Generator, phi: float = DRIFT_PHI) -> np.ndarray:
    """Onset offsets in milliseconds of ``count`` successive notes: an AR(1) process
    ``e[t] = phi·e[t-1] + sqrt(1-phi²)·σ·z[t]`` whose stationary spread is ``σ = amount·DRIFT_MS``."""
    sigma = amount * DRIFT_MS
    offsets = np.zeros(count)
    if count == 0 or sigma == 0:
        return offsets
    noise = rng.standard_normal(count) * sigma * math.sqrt(1 - phi * phi)
    offsets[0] = rng.standard_normal() * sigma
    for t in range(1, count):
        offsets[t] = phi * offsets[t - 1] + noise[t]
    return offsets


def metric_accent(position: int, beat: int) -> int:
    """Velocity added for a note ``position`` steps into its bar: +16 on the downbeat, +6 on a beat."""
    return 16 if position == 0 else 6 if position % beat == 0 else 0


def phrase_arch(step: int, starts: list[int], total: int) -> float:
    """−0.5 at the edges of the phrase holding ``step`` rising to +1 in its middle (a sine arch)."""
    left = max([s for s in starts if s <= step], default=0)
    right = min([s for s in starts if s > step], default=total)
    x = (step - left) / max(right - left, 1)
    return 1.5 * math.sin(math.pi * x) - 0.5


def velocities(onsets: list[int], positions: list[int], beat: int, base: int, amount: float,
               phrase_starts: list[int], total: int, rng: np.random.Generator) -> list[int]:  # fmt: skip
    """MIDI velocity (1..127) of each note: ``base`` plus its metric accent, plus at ``amount`` > 0
    the phrase arch (up to ``amount·ARCH``) and a little scatter (σ = ``amount·SCATTER``)."""
    result = []
    scatter = rng.standard_normal(len(onsets)) * SCATTER * amount if amount else np.zeros(len(onsets))
    for onset, position, noise in zip(onsets, positions, scatter, strict=True):
        value = base + metric_accent(position, beat) + amount * ARCH * phrase_arch(onset, phrase_starts, total) + noise
        result.append(int(min(127, max(1, round(value)))))
    return result


def ritardando(steps: np.ndarray, start: int, end: int, amount: float) -> np.ndarray:
    """Performed time (in steps) of grid times ``steps``: from ``start`` to ``end`` the local tempo
    slows smoothly, each step lasting ``1 + amount·RITARDANDO·u²`` (u from 0 to 1)."""
    steps = np.asarray(steps, dtype=float)
    length = max(end - start, 1)
    u = np.clip((steps - start) / length, 0.0, None)
    slow = amount * RITARDANDO * length * np.minimum(u, 1.0) ** 3 / 3
    tail = amount * RITARDANDO * np.clip(steps - end, 0.0, None)  # past the end: the final slow tempo
    return steps + slow + tail


def statistics(offsets_ms: np.ndarray, velocity: list[int], downbeats: list[bool]) -> dict[str, float]:
    """What a performance does, for reports: the onset offsets' spread, lag-1 autocorrelation and
    largest size (ms); the velocity's mean, spread and downbeat-minus-other difference."""
    offsets = np.asarray(offsets_ms, dtype=float)
    centred = offsets - offsets.mean() if len(offsets) else offsets
    energy = float((centred * centred).sum())
    velocity_array = np.asarray(velocity, dtype=float)
    down = np.asarray(downbeats, dtype=bool)
    return {
        "timing_sd_ms": float(offsets.std()) if len(offsets) else 0.0,
        "timing_lag1": float((centred[1:] * centred[:-1]).sum() / energy) if energy > 0 else 0.0,
        "timing_max_ms": float(np.abs(offsets).max()) if len(offsets) else 0.0,
        "velocity_mean": float(velocity_array.mean()),
        "velocity_sd": float(velocity_array.std()),
        "downbeat_minus_other": float(velocity_array[down].mean() - velocity_array[~down].mean())
        if down.any() and (~down).any() else 0.0,
    }
