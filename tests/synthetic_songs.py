"""A small synthetic corpus (a Dataset built in memory) for training tests: seconds, no parsing."""

from __future__ import annotations

import random
from pathlib import Path

from tunesmith.config import Config, load_preset
from tunesmith.corpus.dataset import Dataset, Example
from tunesmith.encoding import Vocabulary, decode_tokens, encode_notes
from tunesmith.song import Note, Song, bar_steps, regular_bar_starts

SCALES = {"major": [60, 62, 64, 65, 67, 69, 71, 72], "minor": [57, 59, 60, 62, 64, 65, 67, 69]}
METERS = ["4/4", "3/4", "6/8"]


def synthetic_song(index: int) -> Song:
    """A stepwise tune of 4 to 8 bars in one of three meters, ending on the tonic."""
    rng = random.Random(index)
    mode = "minor" if index % 4 == 3 else "major"
    meter = METERS[index % len(METERS)]
    bar = bar_steps(meter, 4)
    beat = 6 if meter == "6/8" else 4
    scale = SCALES[mode]
    degree, notes = 0, []
    for _ in range(rng.randint(4, 8) * bar // beat - 1):
        degree = max(0, min(len(scale) - 1, degree + rng.choice([-1, 1, 1, 2, -2])))
        if rng.random() < 0.1:
            notes.append(Note(None, beat))
        elif rng.random() < 0.5:
            notes += [Note(scale[degree], beat // 2), Note(scale[max(degree - 1, 0)], beat - beat // 2)]
        else:
            notes.append(Note(scale[degree], beat))
    notes.append(Note(scale[0], beat))
    total = sum(n.steps for n in notes)
    return Song(notes=notes, meter=meter, bar_starts=regular_bar_starts(total, bar), mode=mode,
                title=f"tune {index}", source="synthetic")  # fmt: skip


def synthetic_dataset(folder: Path, songs: int = 48, val_every: int = 6) -> Dataset:
    """``songs`` synthetic tunes, every ``val_every``-th one in the validation split."""
    examples = []
    for i in range(songs):
        song = synthetic_song(i)
        tokens = encode_notes(song.notes)
        song.notes = decode_tokens(tokens)
        examples.append(Example(song, tokens, song.title, "val" if i % val_every == 0 else "train"))
    vocab = Vocabulary.build(e.tokens for e in examples)
    return Dataset(examples, vocab, {"sources": ["synthetic"]}, Path(folder), 4)


def tiny_config(**train: object) -> Config:
    """The ``tiny`` preset, single-threaded, with train-section overrides."""
    config = load_preset("tiny")
    config.train.threads = 1
    config.train.max_minutes = 0.0
    for name, value in train.items():
        setattr(config.train, name, value)
    return config.validate()


def untrained_checkpoint(path, low: int = 55, high: int = 84, seed: int = 0, meters: list[str] | None = None):
    """Save a tiny untrained model with the full checkpoint layout, pitches MIDI ``low..high``,
    modes major/minor and the meters 2/4, 3/4, 4/4, 6/8 (or ``meters``, after ``<unk>``); returns ``path``."""
    import torch

    from tunesmith.checkpoint import Checkpoint
    from tunesmith.config import Config, ModelConfig
    from tunesmith.encoding import SPECIALS
    from tunesmith.model import MelodyLSTM

    torch.manual_seed(seed)
    config = Config()
    config.model = ModelConfig(embedding=8, position_embedding=4, condition_embedding=2, hidden=16, layers=1, dropout=0.0)
    vocab = list(SPECIALS) + [str(p) for p in range(low, high + 1)]
    meters = UNTRAINED_METERS if meters is None else ["<unk>", *meters]
    model = MelodyLSTM(config.model, len(vocab), 3, len(meters))
    Checkpoint.from_model(model, config=config.to_dict(), vocab=vocab, modes=["<unk>", "major", "minor"],
                          meters=meters, steps_per_quarter=4).save(path)  # fmt: skip
    return path


UNTRAINED_METERS = ["<unk>", "2/4", "3/4", "4/4", "6/8"]


def timed_notes(song):
    """(pitch, start quarter, length quarters) of each pitched note of a Song."""
    result, step = [], 0
    for note in song.notes:
        if note.pitch is not None:
            result.append((note.pitch, step / song.steps_per_quarter, note.steps / song.steps_per_quarter))
        step += note.steps
    return result


def sounding(tokens: list[str], start: int, end: int) -> list[str]:
    """What sounds at each step of ``start..end``: the onset token, or the one held from before."""
    out, last = [], "r"
    for step, token in enumerate(tokens[:end]):
        last = last if token == "_" else token
        if step >= start:
            out.append(last)
    return out + ["r"] * (end - start - len(out))
