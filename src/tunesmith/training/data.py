"""Corpus examples → tensors once, then cheap length-bucketed batches every epoch.

A song with body tokens ``b_0 … b_{N-1}`` becomes ``inputs = [<s>, b_0 … b_{N-1}]``,
``targets = [b_0 … b_{N-1}, </s>]`` and ``positions`` = step-within-bar of each target
(docs/ARCHITECTURE.md, "Sequences the model sees"), and ``form`` the form inputs of each target
(:mod:`tunesmith.form.inputs`, from the song's recovered phrases and their letters).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from tunesmith.encoding import END, HOLD, START, Vocabulary
from tunesmith.form import inputs as form_inputs
from tunesmith.song import MODES, Song, bar_steps, step_positions

UNKNOWN = "<unk>"


@dataclass
class SongTensors:
    """One song (or chunk of one) ready for the model: three aligned int64 vectors and two ids."""

    inputs: torch.Tensor  # [T] token ids fed in
    positions: torch.Tensor  # [T] step-within-bar of each target
    targets: torch.Tensor  # [T] token ids to predict
    mode: int  # index into the modes vocabulary
    meter: int  # index into the meters vocabulary
    form: torch.Tensor | None = None  # [T, 5] form inputs of each target (None: not computed)


def condition_vocabularies(train_examples: Sequence[Any]) -> tuple[list[str], list[str]]:
    """``modes`` and ``meters`` lists (index 0 = ``<unk>``); meters are those the training split has."""
    meters = sorted({e.song.meter for e in train_examples})
    return [UNKNOWN, *MODES], [UNKNOWN, *meters]


def condition_id(value: str, vocabulary: Sequence[str]) -> int:
    """Index of ``value`` in a conditioning vocabulary; anything unseen is 0 (``<unk>``)."""
    return vocabulary.index(value) if value in vocabulary else 0


def song_positions(song: Song, n_steps: int, steps_per_quarter: int) -> list[int]:
    """Step-within-bar of steps ``0..n_steps`` (n_steps + 1 values) of ``song``."""
    try:
        bar_length = bar_steps(song.meter, steps_per_quarter)
    except (ValueError, ZeroDivisionError):  # a meter the grid cannot hold: count in 4/4 bars
        bar_length = 4 * steps_per_quarter
    return step_positions(song.bar_starts, n_steps, bar_length)


def tensorize(examples: Sequence[Any], vocab: Vocabulary, modes: Sequence[str], meters: Sequence[str],
              steps_per_quarter: int, form: bool = False) -> list[SongTensors]:  # fmt: skip
    """Every example as :class:`SongTensors` (whole songs, in the order given); ``form`` adds the form inputs."""
    songs = []
    hold = vocab.ids([HOLD])[0]
    for example in examples:
        ids = vocab.ids([START, *example.tokens, END])
        positions = song_positions(example.song, len(example.tokens), steps_per_quarter)
        rows = form_inputs.song_form_rows(example.song, ids[1:-1], hold, vocab.pad) if form else None
        songs.append(SongTensors(
            inputs=torch.tensor(ids[:-1], dtype=torch.long),
            positions=torch.tensor(positions, dtype=torch.long),
            targets=torch.tensor(ids[1:], dtype=torch.long),
            mode=condition_id(example.song.mode, modes),
            meter=condition_id(example.song.meter, meters),
            form=None if rows is None else torch.tensor(rows, dtype=torch.long),
        ))  # fmt: skip
    return songs


def chunk(songs: Sequence[SongTensors], chunk_steps: int) -> list[SongTensors]:
    """Cut songs longer than ``chunk_steps`` into consecutive chunks (no state crosses a cut)."""
    chunks = []
    for song in songs:
        for start in range(0, len(song.targets), chunk_steps):
            end = start + chunk_steps
            chunks.append(SongTensors(song.inputs[start:end], song.positions[start:end], song.targets[start:end],
                                      song.mode, song.meter, None if song.form is None else song.form[start:end]))  # fmt: skip
    return chunks


def pad_batch(batch: Sequence[SongTensors], pad: int, device: Any = "cpu") -> tuple[torch.Tensor, ...]:
    """Right-padded ``inputs, positions, targets`` [B, T] and ``mode, meter`` [B] on ``device``.

    Padding sits after each song's end, so a left-to-right LSTM's real outputs are unaffected;
    padded targets carry ``pad`` and are ignored by the loss and the metrics.
    """
    inputs = pad_sequence([s.inputs for s in batch], batch_first=True, padding_value=pad)
    positions = pad_sequence([s.positions for s in batch], batch_first=True, padding_value=0)
    targets = pad_sequence([s.targets for s in batch], batch_first=True, padding_value=pad)
    mode = torch.tensor([s.mode for s in batch], dtype=torch.long)
    meter = torch.tensor([s.meter for s in batch], dtype=torch.long)
    return tuple(t.to(device, non_blocking=True) for t in (inputs, positions, targets, mode, meter))


def epoch_batches(chunks: Sequence[SongTensors], batch_size: int, seed: int, rank: int = 0,
                  world: int = 1) -> list[list[SongTensors]]:  # fmt: skip
    """This rank's batches for one epoch: length-bucketed, shuffled by ``seed``, equal count per rank.

    Sorting by a jittered length groups similar lengths (little padding) while batch contents
    still change from epoch to epoch. Every rank computes the same list of *steps*: groups of
    ``batch_size × world`` neighbours in that order, shuffled; rank ``r`` takes the ``r``-th
    part of each. So the ranks' batches at one step have about the same length: a step costs
    its longest batch's length on every rank (they synchronise each update), and with the ranks
    drawing separate random buckets the shorter one waited, ~28% of the German erk run's time.
    A last group too small to give every rank a song is dropped. With one rank (``world`` 1)
    the groups are the batches.
    """
    rng = random.Random(seed)
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].targets) * rng.uniform(0.9, 1.1))
    size = batch_size * world
    groups = [order[start : start + size] for start in range(0, len(order), size)]
    rng.shuffle(groups)
    batches = []
    for group in groups:
        if len(group) < world:
            continue
        share, extra = divmod(len(group), world)  # a full group gives each rank batch_size songs; a short one splits evenly
        start = rank * share + min(rank, extra)
        batches.append([chunks[i] for i in group[start : start + share + (rank < extra)]])
    return batches


def hide_conditions(mode: torch.Tensor, meter: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each song's mode and meter by ``<unk>`` (0) with probability ``share``, so 0 is learned."""
    if share <= 0:
        return mode, meter
    hide_mode = torch.rand(mode.shape, device=mode.device) < share
    hide_meter = torch.rand(meter.shape, device=meter.device) < share
    return mode.masked_fill(hide_mode, 0), meter.masked_fill(hide_meter, 0)


def pad_form(batch: Sequence[SongTensors], device: Any = "cpu") -> torch.Tensor | None:
    """Right-padded form inputs [B, T, 5] of a batch (zeros = unknown), or None when none has them."""
    if all(s.form is None for s in batch):
        return None
    rows = [s.form if s.form is not None else torch.zeros(len(s.targets), form_inputs.WIDTH, dtype=torch.long)
            for s in batch]  # fmt: skip
    return pad_sequence(rows, batch_first=True, padding_value=0).to(device, non_blocking=True)


def hide_form(form: torch.Tensor | None, share: float) -> torch.Tensor | None:
    """Zero (= "form unknown") each song's form inputs with probability ``share``, so formless is learned."""
    if form is None or share <= 0:
        return form
    hide = torch.rand(form.shape[0], device=form.device) < share
    return form.masked_fill(hide[:, None, None], 0)
