"""The originality index as plain data that ships inside a checkpoint, and the default ``--max-copy``.

A checkpoint is loaded with ``torch.load(weights_only=True)``, so the entry holds only tensors,
lists, strings and numbers: each training song's notes (pitch −1 = rest, steps), title, meter,
grid and bar starts. The automaton is rebuilt from them at load time (a fraction of a second for
the shipped corpus; see BENCHMARKS.md), which keeps the file small and the format stable.

The default ``--max-copy`` is derived from the corpus: the 95th percentile (nearest rank) of the
longest stretch each held-out (validation) song shares with the training songs — what real,
unseen folk songs of the same tradition typically share with the rest of it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import TunesmithError
from tunesmith.originality.automaton import FROZEN_FORMAT, STEPS_RANGE, FrozenAutomaton, SuffixAutomaton, array_codes
from tunesmith.originality.index import OriginalityIndex
from tunesmith.song import Song

ENTRY_FORMAT = "tunesmith-originality"
ENTRY_VERSION = 1
DEFAULT_PERCENTILE = 95.0
EXTRA_KEY = "originality"  # checkpoint["extra"][EXTRA_KEY]


def held_out_statistic(index: OriginalityIndex, held_out: Sequence[Song], percentile: float = DEFAULT_PERCENTILE) -> dict:
    """The default maximum copy length: a percentile of what held-out real songs share with ``index``.

    Parameters
    ----------
    index : OriginalityIndex
        Built from the training songs.
    held_out : sequence of Song
        Real songs the index does not hold (the validation split).
    percentile : float
        0–100; the nearest-rank percentile, so ``max_copy`` is a length some real song reaches.

    Returns
    -------
    dict
        ``max_copy`` (notes, at least 1), ``percentile``, ``songs``, and the distribution's
        ``median``, ``mean`` and ``max`` in notes.
    """
    if not 0 < percentile <= 100:
        raise TunesmithError(f"the percentile must be in (0, 100], got {percentile!r}")
    if not held_out:
        raise TunesmithError("no held-out songs to derive the maximum copy length from")
    lengths = np.array([index.longest_match(song).notes for song in held_out])
    return {
        "max_copy": max(1, int(np.percentile(lengths, percentile, method="inverted_cdf"))),
        "percentile": float(percentile),
        "songs": len(lengths),
        "median": float(np.median(lengths)),
        "mean": round(float(lengths.mean()), 2),
        "max": int(lengths.max()),
    }


def build_entry(train: Sequence[Song], held_out: Sequence[Song], percentile: float = DEFAULT_PERCENTILE) -> dict[str, Any]:
    """The checkpoint entry for a training split (and the held-out split that sets ``max_copy``).

    Returns
    -------
    dict
        Plain data (loadable with ``weights_only=True``); :func:`index_from_entry` rebuilds the index.
    """
    import torch

    index = OriginalityIndex(train)
    counts = [len(song.notes) for song in train]
    bar_counts = [len(song.bar_starts) for song in train]
    return {
        "format": ENTRY_FORMAT,
        "version": ENTRY_VERSION,
        "pitches": torch.tensor([-1 if n.pitch is None else n.pitch for s in train for n in s.notes], dtype=torch.int16),
        "steps": torch.tensor([n.steps for s in train for n in s.notes], dtype=torch.int32),
        "offsets": torch.tensor(np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]), dtype=torch.int64),
        "titles": [s.title for s in train],
        "meters": [s.meter for s in train],
        "steps_per_quarter": [int(s.steps_per_quarter) for s in train],
        "bar_starts": torch.tensor([b for s in train for b in s.bar_starts], dtype=torch.int32),
        "bar_offsets": torch.tensor(np.concatenate([[0], np.cumsum(bar_counts, dtype=np.int64)]), dtype=torch.int64),
        "held_out": held_out_statistic(index, held_out, percentile),
    }


def index_from_entry(entry: dict[str, Any], cache: bool = True) -> OriginalityIndex:
    """Rebuild the :class:`OriginalityIndex` of a checkpoint entry made by :func:`build_entry`.

    The automaton is built once per entry and kept, frozen into flat arrays, in the tunesmith
    cache (``$TUNESMITH_CACHE/originality/``, keyed by a hash of the songs); later loads read the
    arrays (a few hundredths of a second instead of a build). ``cache=False`` always builds.
    """
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT:
        raise TunesmithError("the checkpoint's originality entry is not a tunesmith originality index")
    if entry.get("version") != ENTRY_VERSION:
        raise TunesmithError(f"originality index version {entry.get('version')!r}; this tunesmith reads {ENTRY_VERSION}")
    pitches, steps = np.asarray(entry["pitches"], dtype=np.int64), np.asarray(entry["steps"], dtype=np.int64)
    offsets = np.asarray(entry["offsets"], dtype=np.int64)
    bars, bar_offsets = np.asarray(entry["bar_starts"]).tolist(), np.asarray(entry["bar_offsets"]).tolist()
    index = OriginalityIndex()
    starts = offsets.tolist()
    for i, title in enumerate(entry["titles"]):
        index.starts.append(starts[i] + i)  # each song before this one also left a separator
        index.note_steps.append(steps[starts[i] : starts[i + 1]])
        index.bar_starts.append(bars[bar_offsets[i] : bar_offsets[i + 1]])
    index.titles, index.meters = list(entry["titles"]), list(entry["meters"])
    index.steps_per_quarter, index.songs = [int(n) for n in entry["steps_per_quarter"]], len(index.titles)
    path = _cache_path(pitches, steps, offsets) if cache else None
    index.automaton = None
    if path is not None and path.is_file():
        try:
            with np.load(path) as stored:
                index.automaton = FrozenAutomaton({name: stored[name] for name in stored.files})
        except (OSError, ValueError, KeyError):
            index.automaton = None  # a damaged cache file is rebuilt below
    if index.automaton is None:
        codes = array_codes(pitches, steps, offsets).tolist()
        builder = SuffixAutomaton()
        for i in range(len(index.titles)):
            builder.extend_all([*codes[starts[i] : starts[i + 1]], -(i + 1)])
        arrays = builder.freeze()
        if path is not None:
            _store(path, arrays)
        index.automaton = FrozenAutomaton(arrays)
    return index


def _cache_path(pitches: np.ndarray, steps: np.ndarray, offsets: np.ndarray) -> Path | None:
    from tunesmith.config import CorpusConfig
    from tunesmith.corpus.dataset import cache_root

    digest = hashlib.sha256(f"{ENTRY_VERSION}:{STEPS_RANGE}:{FROZEN_FORMAT}".encode())
    for array in (pitches, steps, offsets):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return cache_root(CorpusConfig()) / "originality" / f"{digest.hexdigest()[:24]}.npz"


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the frozen automaton atomically; a cache that cannot be written is only a slower next load."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass


def entry_of(checkpoint: Any) -> dict[str, Any] | None:
    """The originality entry of a loaded checkpoint (a ``Checkpoint`` or its plain dict), or None."""
    extra = checkpoint.extra if hasattr(checkpoint, "extra") else checkpoint.get("extra")
    return (extra or {}).get(EXTRA_KEY)


def with_entry(payload: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of checkpoint dict ``payload`` whose ``extra`` holds ``entry`` (other extras kept)."""
    return {**payload, "extra": {**(payload.get("extra") or {}), EXTRA_KEY: entry}}


def entry_for_checkpoint(checkpoint: Any, percentile: float = DEFAULT_PERCENTILE, progress: bool = True,
                         dataset: Any = None) -> dict[str, Any]:  # fmt: skip
    """Build the entry from the training split the checkpoint's own config names (prepared, or
    read from the corpus cache), or from ``dataset``'s (a :class:`~tunesmith.corpus.Dataset`)."""
    if dataset is None:
        from tunesmith.config import Config
        from tunesmith.corpus import prepare

        config = checkpoint.config if hasattr(checkpoint, "config") else checkpoint.get("config")
        try:
            run_config = Config.from_dict(config)
        except (KeyError, TypeError, AttributeError) as exc:
            raise TunesmithError(f"the checkpoint has no usable training config ({type(exc).__name__})") from None
        dataset = prepare(run_config.corpus, run_config.encoding, progress=progress)
    return build_entry([e.song for e in dataset.split("train")], [e.song for e in dataset.split("val")], percentile)
