"""The critic: its forest as arrays, its place in a checkpoint, and the candidates it chooses among."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthetic_songs import synthetic_song, untrained_checkpoint
from tunesmith.checkpoint import Checkpoint
from tunesmith.critic import EXTRA_KEY, Critic, CriticConfig, Forest, critic_of, fit_critic
from tunesmith.errors import TunesmithError
from tunesmith.generate import Generator
from tunesmith.generate.batch import candidate_seed


def _sklearn_forest(seed: int = 0):
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(300, 6))
    labels = (matrix[:, 0] + 0.5 * matrix[:, 3] ** 2 + rng.normal(scale=0.5, size=300) > 0.6).astype(float)
    forest = RandomForestClassifier(25, min_samples_leaf=3, class_weight="balanced", random_state=seed).fit(matrix, labels)
    return forest, rng.normal(size=(200, 6))


def test_forest_arrays_give_sklearns_probabilities_through_a_safe_checkpoint_round_trip(tmp_path):
    forest, rows = _sklearn_forest()
    arrays = Forest.from_sklearn(forest)
    path = tmp_path / "forest.pt"
    torch.save(arrays.to_plain(), path)
    again = Forest.from_plain(torch.load(path, weights_only=True))
    expected = forest.predict_proba(rows)[:, 1]
    assert np.array_equal(arrays.predict(rows), expected)
    assert np.array_equal(again.predict(rows), expected)
    assert 0.05 < expected.mean() < 0.95  # the probabilities vary: the comparison means something


def test_a_damaged_critic_is_a_one_line_error():
    forest, _ = _sklearn_forest()
    plain = Forest.from_sklearn(forest).to_plain()
    plain["left"] = plain["left"][:-3]
    with pytest.raises(TunesmithError, match="damaged"):
        Forest.from_plain(plain)
    with pytest.raises(TunesmithError, match="damaged"):
        Critic.from_plain({"forest": {}, "columns": ["a"]})
    with pytest.raises(TunesmithError, match="6 feature columns"):
        Forest.from_sklearn(forest).predict(np.zeros((2, 5)))


class _Scores:
    """A stand-in critic: scores melodies by a function of their first pitch, and counts its calls."""

    def __init__(self, prefer_low: bool):
        self.prefer_low, self.calls = prefer_low, 0

    def score(self, songs):
        self.calls += 1
        first = np.array([next(n.pitch for n in s.notes if n.pitch is not None) for s in songs], dtype=float)
        return 1.0 / (1.0 + (first if self.prefer_low else -first) / 100.0 + 2.0)


@pytest.mark.parametrize("prefer_low", [True, False])
def test_the_critics_choice_of_candidates_is_kept_and_each_candidate_is_a_request_of_its_own(tmp_path, prefer_low):
    generator = Generator.from_checkpoint(untrained_checkpoint(tmp_path / "m.pt"), "cpu")
    alone = [generator.generate(bars=4, seed=candidate_seed(11, k), candidates=1)[0] for k in range(3)]
    assert len({tuple(m.tokens) for m in alone}) == 3
    assert generator.generate(bars=4, seed=11)[0].tokens == alone[0].tokens  # no critic: the first candidate
    generator._critic = critic = _Scores(prefer_low)
    chosen = generator.generate(bars=4, seed=11, candidates=3)[0]
    scores = critic.score([m.song for m in alone])
    best = int(np.argmax(scores))
    assert chosen.tokens == alone[best].tokens
    assert chosen.params["seed"] == 11 and chosen.params["candidates"] == 3 and chosen.params["candidate"] == best
    assert chosen.params["critic"] == pytest.approx(scores[best], abs=1e-4)
    assert generator.generate(bars=4, seed=11, candidates=1)[0].tokens == alone[0].tokens  # 1 = the first, as before


def test_several_melodies_are_each_the_best_of_their_own_candidates(tmp_path):
    generator = Generator.from_checkpoint(untrained_checkpoint(tmp_path / "m.pt"), "cpu")
    generator._critic = critic = _Scores(prefer_low=True)
    melodies = generator.generate(bars=4, seed=3, num=3, candidates=2, form="none")
    firsts = generator.generate(bars=4, seed=3, num=3, candidates=1, form="none")
    seconds = generator.generate(bars=4, seed=candidate_seed(3, 1), num=3, candidates=1, form="none")
    for melody, a, b in zip(melodies, firsts, seconds):
        pick = a if critic.score([a.song])[0] >= critic.score([b.song])[0] else b
        assert melody.tokens == pick.tokens
    assert {m.params["candidate"] for m in melodies} <= {0, 1}


def test_a_candidate_that_misses_its_form_loses_to_one_that_honours_it():
    from tunesmith.generate.batch import _merit
    from tunesmith.generate.melody import Melody

    missed = Melody([], None, {"form_honoured": False, "critic": 0.9})
    honoured = Melody([], None, {"form_honoured": True, "critic": 0.2})
    no_form = Melody([], None, {"critic": 0.5})
    assert max(missed, honoured, key=_merit) is honoured
    assert max(no_form, missed, key=_merit) is no_form


def test_fit_store_and_use_a_critic(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from tunesmith.cli import main

    songs = [synthetic_song(i) for i in range(40)]
    generator = Generator.from_checkpoint(tiny_checkpoint, "cpu")
    critic = fit_critic(generator, songs, CriticConfig(trees=7, min_leaf=2))
    assert critic.fitted["songs"] == critic.fitted["melodies"] == 40 and len(critic.forest.roots) == 7
    assert np.all((critic.score(songs) >= 0) & (critic.score(songs) <= 1))

    # the command: fit on the model's training songs, store in a copy of the checkpoint, leave the original alone
    monkeypatch.setattr("tunesmith.critic.model.training_songs", lambda checkpoint, limit=0: songs)
    out = tmp_path / "with-critic.pt"
    before = tiny_checkpoint.read_bytes()
    assert main(["critic", str(tiny_checkpoint), "--output", str(out), "--trees", "5", "--quiet"]) == 0
    assert "5 trees fitted on 40 training songs" in capsys.readouterr().out
    assert tiny_checkpoint.read_bytes() == before
    stored = critic_of(Checkpoint.load(out))
    assert stored is not None and len(stored.forest.roots) == 5 and EXTRA_KEY in Checkpoint.load(out).extra
    melody = Generator.from_checkpoint(out, "cpu").generate(bars=4, seed=2)[0]
    assert melody.params["candidates"] == 2 and melody.params["candidate"] in (0, 1) and 0 <= melody.params["critic"] <= 1
    # the CLI's table says which candidate was kept and how the critic scored it
    assert main(["generate", "--model", str(out), "--bars", "4", "--seed", "3", "--out", str(tmp_path / "gen"),
                 "--formats", "json"]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    kept = json.loads(next((tmp_path / "gen").rglob("*.json")).read_text())["params"]
    assert "critic" in shown and f"{kept['critic']:.2f} · {kept['candidate'] + 1} of 2" in shown
    assert main(["critic", str(tiny_checkpoint), "--trees", "0"]) == 2
    assert "--trees" in capsys.readouterr().err


def test_a_candidate_missing_its_form_is_retried_only_when_no_sibling_honours_it(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import tunesmith.form
    from tunesmith.generate import GenerationConfig
    from tunesmith.generate.batch import _generate_batch, generate_batch

    def pitches(song):
        return sum(n.pitch for n in song.notes if n.pitch is not None)

    # a stand-in for the form check: about one melody in three "misses its form"
    monkeypatch.setattr(tunesmith.form, "compliance", lambda song, phrases: SimpleNamespace(ok=pitches(song) % 3 != 0, score=0.0))
    generator = Generator.from_checkpoint(untrained_checkpoint(tmp_path / "m.pt"), "cpu")
    generator._critic = critic = _Scores(prefer_low=False)
    configs = [GenerationConfig(bars=4, form="AB", seed=s, candidates=2) for s in range(16)]
    tries = _generate_batch(generator, [GenerationConfig(bars=4, form="AB", seed=candidate_seed(s, k), candidates=1)
                                        for s in range(16) for k in range(2)], 64, False, None, retry=False)  # fmt: skip
    firsts = [(tries[2 * s][0], tries[2 * s + 1][0]) for s in range(16)]
    retried = []
    real_honour = generator.honour_forms
    monkeypatch.setattr(generator, "honour_forms", lambda requests, **k: retried.extend(m for ms, _, _ in requests for m in ms)
                        or real_honour(requests, **k))  # fmt: skip
    results = generate_batch(generator, configs)
    both_missed = [s for s, pair in enumerate(firsts) if not any(m.params["form_honoured"] for m in pair)]
    assert 0 < len(both_missed) < 16 and len(retried) == len(both_missed)  # the test sees both cases
    assert sorted(m.params["seed"] for m in retried) == both_missed
    for s, ((kept,), pair) in enumerate(zip(results, firsts)):
        assert kept.params["seed"] == s and kept.params["candidates"] == 2
        if s in both_missed:
            continue
        honoured = [m for m in pair if m.params["form_honoured"]]
        best = max(honoured, key=lambda m: critic.score([m.song])[0])
        assert kept.tokens == best.tokens and kept.params["form_honoured"] is True
