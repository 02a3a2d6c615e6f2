"""Metric definitions on a hand-made distribution with known answers, and the model helper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthetic_songs import synthetic_dataset
from tunesmith.config import ModelConfig
from tunesmith.encoding import Vocabulary
from tunesmith.likelihood import evaluate_model, prediction_metrics, song_statistics, summarize
from tunesmith.model import MelodyLSTM
from tunesmith.training.data import condition_vocabularies, tensorize

VOCAB = Vocabulary(["<pad>", "<s>", "</s>", "_", "r", "60", "62"])  # ids 0..6
# Targets 60 _ r 62 </s>, and the distribution predicted before each (columns follow VOCAB).
TARGETS = np.array([5, 3, 4, 6, 2])
PROBS = np.array([
    [0, 0, 0.0, 0.2, 0.1, 0.5, 0.2],  # 60: 1 bit; pitch .5/.7
    [0, 0, 0.0, 0.5, 0.25, 0.125, 0.125],  # _: 1 bit
    [0, 0, 0.0, 0.5, 0.25, 0.125, 0.125],  # r: 2 bits, argmax wrong
    [0, 0, 0.0, 0.25, 0.0, 0.25, 0.5],  # 62: 1 bit; pitch .5/.75
    [0, 0, 0.5, 0.25, 0.25, 0.0, 0.0],  # </s>: 1 bit
])  # fmt: skip


def log_probs() -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(PROBS)


def test_hand_made_distribution_gives_known_metrics():
    m = prediction_metrics(log_probs(), TARGETS, VOCAB)
    assert m["bits_per_step"] == pytest.approx(6 / 5)
    assert m["loss"] == pytest.approx(6 * math.log(2) / 5)
    assert m["bits_per_event"] == pytest.approx(6 / 3)  # onsets 60, r, 62
    assert m["pitch_bits_per_note"] == pytest.approx((-math.log2(0.5 / 0.7) - math.log2(0.5 / 0.75)) / 2)
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["onset_accuracy"] == pytest.approx(3 / 4)  # 60, 62, </s> right; r wrong
    assert (m["steps"], m["events"], m["notes"], m["songs"]) == (5, 3, 2, 1)


def test_padding_is_ignored_and_torch_input_accepted():
    padded_lp = np.vstack([log_probs(), np.full((2, 7), math.log(1 / 7))])
    padded_targets = np.concatenate([TARGETS, [VOCAB.pad, VOCAB.pad]])
    plain = prediction_metrics(log_probs(), TARGETS, VOCAB)
    assert prediction_metrics(torch.tensor(padded_lp), torch.tensor(padded_targets), VOCAB) == pytest.approx(plain)


def test_songs_pool_by_tokens_not_by_song():
    uniform = np.full((3, 7), math.log(1 / 7))
    m = prediction_metrics([log_probs(), uniform], [TARGETS, np.array([5, 3, 2])], VOCAB)
    assert m["bits_per_step"] == pytest.approx((6 + 3 * math.log2(7)) / 8)
    assert m["bits_per_event"] == pytest.approx((6 + 3 * math.log2(7)) / 4)
    assert m["pitch_bits_per_note"] == pytest.approx((-math.log2(5 / 7) - math.log2(2 / 3) + 1) / 3)
    assert m["songs"] == 2


def test_uniform_distribution_gives_log_sizes():
    targets = np.array([5, 6, 3, 4, 2])
    m = summarize(song_statistics(np.full((5, 7), math.log(1 / 7)), targets, VOCAB))
    assert m["bits_per_step"] == pytest.approx(math.log2(7))
    assert m["pitch_bits_per_note"] == pytest.approx(1.0)  # two pitches, equally likely


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        song_statistics(log_probs()[:4], TARGETS, VOCAB)


def test_evaluate_model_agrees_with_log_likelihood(tmp_path):
    dataset = synthetic_dataset(tmp_path, songs=12)
    examples, vocab = dataset.split("val") + dataset.split("train")[:4], dataset.vocab
    modes, meters = condition_vocabularies(dataset.split("train"))
    torch.manual_seed(0)
    model = MelodyLSTM(ModelConfig(embedding=8, position_embedding=4, condition_embedding=2, hidden=16, layers=1),
                       len(vocab), len(modes), len(meters)).eval()  # fmt: skip
    metrics = evaluate_model(model, examples, vocab, modes, meters, 4, batch_size=3)
    nats, steps = 0.0, 0
    for song in tensorize(examples, vocab, modes, meters, 4):
        tokens = torch.cat([song.inputs, song.targets[-1:]])[None]
        positions = torch.cat([torch.zeros(1, dtype=torch.long), song.positions])[None]
        ll = model.log_likelihood(tokens, positions, torch.tensor([song.mode]), torch.tensor([song.meter]))
        nats -= float(ll.sum())
        steps += ll.numel()
    assert metrics["steps"] == steps
    assert metrics["loss"] == pytest.approx(nats / steps, rel=1e-5)
