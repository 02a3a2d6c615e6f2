"""Regenerating bars: everything outside the region kept bit for bit, fixed notes honoured,
the kept suffix scored correctly, and bad input as one-line errors (API and CLI)."""

import math
from dataclasses import replace

import pytest
import torch

from tunesmith.checkpoint import Checkpoint
from tunesmith.cli import main
from tunesmith.config import Config, ModelConfig
from tunesmith.encoding import SPECIALS, decode_tokens
from tunesmith.errors import TunesmithError
from tunesmith.generate import Generator, Melody, default_model_path
from tunesmith.generate.regenerate import parse_bars, parse_fixes, restrike
from tunesmith.model import MelodyLSTM
from tunesmith.song import step_positions

METERS = ["<unk>", "2/4", "3/4", "4/4", "6/8"]


def tiny_checkpoint(path, seed):
    torch.manual_seed(seed)
    config = Config()
    config.model = ModelConfig(embedding=8, position_embedding=4, condition_embedding=2, hidden=16, layers=1, dropout=0.0)
    vocab = list(SPECIALS) + [str(p) for p in range(55, 85)]
    model = MelodyLSTM(config.model, len(vocab), 3, len(METERS))
    Checkpoint.from_model(model, config=config.to_dict(), vocab=vocab, modes=["<unk>", "major", "minor"],
                          meters=METERS, steps_per_quarter=4).save(path)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("regen") / "tiny.pt", 0)


@pytest.fixture(scope="module")
def generator(model_path):
    return Generator.from_checkpoint(model_path, "cpu")


@pytest.fixture(scope="module")
def melody(generator):
    return generator.generate(bars=8, meter="3/4", key="D", seed=11, full_length=True, temperature=0.8)[0]


def test_outside_the_region_every_token_is_kept_and_the_region_is_new(generator, melody):
    results = generator.regenerate(melody, (3, 5), num=4, candidates=16, seed=2)
    start, end = 2 * 12, 5 * 12  # bars 3..5 of 3/4 at 16ths
    assert len(results) == 4
    for result in results:
        first, last = result.params["regenerated"]["region_steps"]
        assert start <= first and last == end  # a note held into bar 3 stays whole
        assert result.tokens[:first] == melody.tokens[:first]
        assert result.tokens[end:] == melody.tokens[end:]
        assert len(result.tokens) == len(melody.tokens)
        assert result.song.meter == "3/4" and result.song.key == melody.song.key and result.song.mode == "major"
        assert result.song.bar_starts == melody.song.bar_starts
    assert len({tuple(r.tokens) for r in results}) == 4, "distinct versions"
    assert any(r.tokens[start:end] != melody.tokens[start:end] for r in results)
    scores = [r.params["regenerated"]["suffix_log_likelihood"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_the_suffix_score_is_the_models_log_likelihood_of_the_kept_bars(generator, melody):
    result = generator.regenerate(melody, (2, 3), candidates=4, seed=5, horizon=0)[0]
    ids = generator.vocab.ids(result.model_tokens)
    tokens = torch.tensor([[generator.vocab.start] + ids])
    positions = step_positions(result.song.bar_starts, len(ids), 12)
    log_p = generator.model.log_likelihood(tokens, torch.tensor([[0] + positions[: len(ids)]]),
                                           torch.tensor([1]), torch.tensor([METERS.index("3/4")]))[0]  # fmt: skip
    kept = float(log_p[3 * 12 :].sum())
    assert math.isclose(result.params["regenerated"]["suffix_log_likelihood"], kept, abs_tol=2e-3)


def test_the_horizon_limits_the_scored_bars_and_keeps_the_rest(generator, melody):
    full = generator.regenerate(melody, (2, 3), candidates=6, seed=5, horizon=0)
    near = generator.regenerate(melody, (2, 3), candidates=6, seed=5, horizon=2)
    assert near[0].params["regenerated"]["scored_steps"] == [36, 60] and full[0].params["regenerated"]["scored_steps"] == [36, 96]
    for result in near + full:
        assert result.tokens[36:] == melody.tokens[36:] and len(result.tokens) == len(melody.tokens)


def test_what_was_held_across_the_regions_end_is_struck_again_there():
    # a rest held into the kept bar stays a rest, not the new last note held on
    assert restrike(["60", "r", "_", "_"], ["60", "62", "_", "_"], 2) == ["60", "62", "r", "_"]
    # a note held into it sounds again at its pitch; the tie stays when the new note has that pitch
    assert restrike(["60", "_", "_", "_"], ["60", "64", "_", "_"], 2) == ["60", "64", "60", "_"]
    assert restrike(["60", "_", "_", "_"], ["62", "60", "_", "_"], 2) == ["62", "60", "_", "_"]
    # nothing held there, or the new region already begins something at the end: unchanged
    assert restrike(["60", "_", "62", "_"], ["64", "_", "62", "_"], 2) == ["64", "_", "62", "_"]
    assert restrike(["60", "_", "_", "_"], ["64", "_", "67", "_"], 2) == ["64", "_", "67", "_"]
    assert restrike(["60", "_"], ["62", "_"], 2) == ["62", "_"]  # the region ends the melody


def test_a_rest_held_into_the_last_kept_bar_keeps_that_bar(generator, melody):
    # bar 7 begins a rest that lasts to the end: regenerating bar 7 keeps bar 8 silent and whole
    tokens = melody.tokens[: 6 * 12] + ["r"] + ["_"] * (len(melody.tokens) - 6 * 12 - 1)
    resting = Melody(tokens, replace(melody.song, notes=decode_tokens(tokens)), dict(melody.params))
    for result in generator.regenerate(resting, (7, 7), num=2, candidates=4, seed=3):
        assert len(result.tokens) == len(tokens) and result.tokens[7 * 12 :] == ["r"] + ["_"] * 11
        assert result.tokens[: 6 * 12] == tokens[: 6 * 12]


def test_fixed_notes_are_honoured_in_the_output_key(generator, melody):
    for result in generator.regenerate(melody, "4-6", num=3, candidates=6, seed=1, fix="bar 4 beat 2 = E5; bar 6 beat 1 = A4"):
        assert result.tokens[3 * 12 + 4] == "76" and result.tokens[5 * 12] == "69"
    for result in generator.regenerate(melody, "4-6", num=2, candidates=4, seed=2, fix="bar 5 beat 1 = rest"):
        assert result.tokens[4 * 12] == "r"  # a rest the musician asked for


def test_model_tokens_go_back_into_the_model(generator, melody):
    assert melody.params["transposition"] == 2 and melody.song.transposition == -2
    assert [int(t) - 2 for t in melody.tokens if t.isdigit()] == [int(t) for t in melody.model_tokens if t.isdigit()]
    assert Melody.from_dict(melody.to_dict()).model_tokens == melody.model_tokens


def test_same_seed_same_regeneration(generator, melody):
    first = generator.regenerate(melody, (2, 4), num=2, candidates=8, seed=9)
    again = generator.regenerate(melody, (2, 4), num=2, candidates=8, seed=9)
    assert [m.tokens for m in first] == [m.tokens for m in again]


@pytest.mark.parametrize("bars, options, message", [
    ("5-3", {}, "goes backwards"),
    ("7-9", {}, "there is no bar 9"),
    ("x", {}, "write the bars"),
    ("2-3", {"fix": "bar 5 beat 1 = D5"}, "outside the regenerated bars"),
    ("2-3", {"fix": "bar 2 beat 1 = C8"}, "outside the pitches the model knows"),
    ("2-3", {"fix": "bar 2 beat 4 = D5"}, "not a step of that bar"),
    ("2-3", {"fix": "bar two = D5"}, "write a fixed note"),
    ("2-3", {"fix": "bar 2 beat 1 = rest; bar 2 beat 1 = D5"}, "two different notes"),
    ("2-3", {"num": 4, "candidates": 2}, "at least --num"),
    ("2-3", {"temperature": float("nan")}, "--temperature must be a finite number"),
    ("2-3", {"seed": "abc"}, "--seed must be a whole number"),
])  # fmt: skip
def test_bad_regeneration_requests_are_one_line_errors(generator, melody, bars, options, message):
    with pytest.raises(TunesmithError, match=message) as info:
        generator.regenerate(melody, bars, **options)
    assert "\n" not in str(info.value)


def test_a_melody_from_another_model_is_refused(tmp_path, melody):
    other = Generator.from_checkpoint(tiny_checkpoint(tmp_path / "other.pt", 1), "cpu")
    with pytest.raises(TunesmithError, match="made by another model"):
        other.regenerate(melody, (2, 3))


def test_parsers():
    assert parse_bars("5-8") == (5, 8) and parse_bars(" 6 ") == (6, 6) and parse_bars((1, 2)) == (1, 2)
    assert parse_fixes("bar 6 beat 1 = D5, bar 7 beat 2.5 = 67") == [(6, 1.0, 74), (7, 2.5, 67)]


def test_cli_regenerates_into_a_new_run_folder(model_path, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["generate", "--model", str(model_path), "--bars", "6", "--seed", "3", "--formats", "json",
                 "--full-length", "--out", str(first)]) == 0  # fmt: skip
    out = tmp_path / "again"
    assert main(["regenerate", str(first / "melody-01.json"), "--bars", "2-3", "--num", "2", "--candidates", "4",
                 "--fix", "bar 2 beat 1 = G4", "--seed", "1", "--formats", "json,mid", "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["melody-01.json", "melody-01.mid", "melody-02.json", "melody-02.mid"]
    original, new = Melody.load(first / "melody-01.json"), Melody.load(out / "melody-02.json")
    assert new.tokens[16] == "67" and new.tokens[48:] == original.tokens[48:]
    assert new.params["regenerated"]["bars"] == "2-3" and "regenerate" in capsys.readouterr().out
    shared = tmp_path / "shared"  # versions that share their first bar, ranked by the next kept bar
    assert main(["regenerate", str(first / "melody-01.json"), "--bars", "2-3", "--num", "2", "--candidates", "6",
                 "--join-bars", "1", "--horizon", "1", "--seed", "1", "--formats", "json", "--out", str(shared)]) == 0  # fmt: skip
    versions = [Melody.load(shared / f"melody-0{i}.json") for i in (1, 2)]
    assert all(v.params["regenerated"]["join_bars"] == 1 and v.tokens[48:] == original.tokens[48:] for v in versions)


@pytest.mark.parametrize("extra, message", [
    (["--bars", "9-5"], "goes backwards"),
    (["--bars", "2-40"], "no bar 40"),
    (["--bars", "2-3", "--fix", "bar 5 beat 1 = D5"], "outside the regenerated bars"),
    (["--bars", "2-3", "--fix", "bar 2 beat 1 = C9"], "outside the pitches"),
    (["--bars", "2-3", "--num", "3", "--candidates", "8", "--join-bars", "1"], "multiple of --num"),
    ([], "say which bars"),
])  # fmt: skip
def test_cli_bad_regeneration_exits_2_with_one_line(model_path, tmp_path, capsys, extra, message):
    first = tmp_path / "first"
    assert main(["generate", "--model", str(model_path), "--bars", "6", "--seed", "3", "--formats", "json",
                 "--out", str(first)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["regenerate", str(first / "melody-01.json"), *extra, "--out", str(tmp_path / "parent" / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "parent").exists()


def test_cli_refuses_a_melody_of_another_model(model_path, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["generate", "--model", str(model_path), "--bars", "4", "--seed", "3", "--formats", "json",
                 "--out", str(first)]) == 0  # fmt: skip
    other = tiny_checkpoint(tmp_path / "other.pt", 1)
    assert main(["regenerate", str(first / "melody-01.json"), "--bars", "2", "--model", str(other),
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "made by another model" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "something else"}')
    assert main(["regenerate", str(broken), "--bars", "2", "--out", str(tmp_path / "y")]) == 2
    assert "not a tunesmith melody" in capsys.readouterr().err


def test_new_bars_are_guarded_and_their_copy_measured_again_with_the_shipped_model():
    """With a model that carries an originality index, the regenerated bars go through the copy
    guard, and the melody's JSON reports the new melody's longest shared stretch, not the old one's."""
    from tunesmith.generate.copyguard import CopyGuard
    from tunesmith.generate.regenerate import RegenerateConfig, plan_region

    shipped = Generator.from_checkpoint(None, device="cpu")
    melody = shipped.generate(bars=8, seed=4, meter="3/4")[0]
    melody.params["copy"] = {"notes": 999, "tune": "stale"}
    plan, _ = plan_region(shipped, melody, RegenerateConfig(bars="3-4", candidates=4).validate())
    assert any(isinstance(c, CopyGuard) for c in plan.controls)
    again = shipped.regenerate(melody, (3, 4), num=2, candidates=4, seed=1)
    for new in again:
        copy = new.params["copy"]
        assert copy["tune"] != "stale" and copy["notes"] <= copy["max_copy"] == 12


def test_regenerations_of_different_melodies_and_regions_share_a_pass(generator, melody, monkeypatch):
    """Requests for other melodies, meters, regions, fixed notes and masks are rows of one pass,
    each giving exactly what it gives alone (its candidates, their scores, its choice)."""
    from tunesmith.generate import decode as decode_module
    from tunesmith.generate.regenerate import regenerate_many

    other = generator.generate(bars=6, meter="6/8", key="A", mode="minor", seed=5, full_length=True)[0]
    requests = [(melody, (3, 5), dict(num=2, candidates=6, seed=1)),
                (other, (1, 2), dict(num=3, candidates=5, seed=2, scale=True)),
                (melody, (7, 8), dict(num=1, candidates=4, seed=3, horizon=0)),
                (other, "4", dict(num=2, candidates=4, seed=4, fix="bar 4 beat 1 = A4")),
                (melody, (2, 2), dict(num=1, candidates=3, seed=5, range="D4-D5"))]  # fmt: skip
    alone = [generator.regenerate(m, bars, **options) for m, bars, options in requests]
    passes = []
    real = decode_module.decode_plans
    monkeypatch.setattr(decode_module, "decode_plans", lambda model, plans, *a, **k: passes.append(len(plans)) or real(model, plans, *a, **k))
    together = regenerate_many(generator, requests)
    assert passes == [len(requests)]
    for one, batched in zip(alone, together, strict=True):
        assert [m.tokens for m in batched] == [m.tokens for m in one]
        assert [m.params["regenerated"] for m in batched] == [m.params["regenerated"] for m in one]
    bad = regenerate_many(generator, requests[:1] + [(melody, (3, 99), {})], return_errors=True)
    assert [m.tokens for m in bad[0]] == [m.tokens for m in alone[0]] and "no bar 99" in str(bad[1])


def test_duplicate_candidates_are_decoded_once_past_the_region_and_keep_their_scores(generator, melody, monkeypatch):
    """Once a plan's region is written, candidates with the same tokens would take the same kept
    bars with the same scores: one of them goes on for all (fewer rows per step), and every
    candidate still gets exactly the tokens and scores it gets decoded alone."""
    from tunesmith.generate.config import GenerationConfig
    from tunesmith.generate.regenerate import RegenerateConfig, plan_region

    plans = [plan_region(generator, melody, RegenerateConfig(bars=bars, num=1, candidates=4, seed=seed).validate())[0]
             for bars, seed in (("2-3", 1), ("5", 2))]  # fmt: skip
    greedy = GenerationConfig(scheme="greedy")  # every candidate of a plan is the same
    alone = [generator.decode_plans([plan], greedy)[0] for plan in plans]
    from tunesmith.stepper import BatchStepper

    rows = []
    real = BatchStepper.step  # the shared loop's model step: the rows it carries
    monkeypatch.setattr(BatchStepper, "step", lambda self, tokens, *a: rows.append(tokens.shape[0]) or real(self, tokens, *a))
    together = generator.decode_plans(plans, greedy)
    for one, batched in zip(alone, together, strict=True):
        assert batched.ids == one.ids and len(set(map(tuple, batched.ids))) == 1
        assert batched.scored == one.scored and one.scored[0] < 0
    assert rows[0] == 8 and min(rows) == 1  # 4 + 4 candidates, then one row for each plan's kept bars


@pytest.mark.parametrize("form, phrase_starts, message", [
    ("A9Z", [], "form"), ("A2 B2", [], "lasts 48 steps but the melody has 96"),
    ("A2 A2 B2 A2", [0, 24, 48], "do not match its form"), (["A"], [], "must be text"),
])  # fmt: skip
def test_a_bad_recorded_form_is_a_one_line_error(generator, melody, form, phrase_starts, message):
    broken = Melody.from_dict(melody.to_dict())
    broken.params["form"], broken.song.phrase_starts = form, phrase_starts
    with pytest.raises(TunesmithError, match=message) as caught:
        generator.regenerate(broken, (3, 4), candidates=2, seed=1)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model models/erk.pt is not present")
def test_regenerated_bars_follow_the_melodys_form_with_the_shipped_model():
    """Bars regenerated inside a restating phrase of an AABA melody still restate: the new bars
    read their place in the form and the form control applies (the compliance check passes);
    without the recorded form the same requests break the form. Batched requests: as alone."""
    from tunesmith.form import compliance
    from tunesmith.generate.regenerate import regenerate_many

    shipped = Generator.from_checkpoint(None, device="cpu")
    melodies = [m for m in shipped.generate(form="AABA", bars=8, num=4, seed=5) if compliance(m.song, "AABA").ok]
    assert len(melodies) >= 3
    requests = [(m, bars, dict(num=1, candidates=4, seed=seed)) for m in melodies for bars in ((3, 4), (8, 8))
                for seed in range(2)]  # fmt: skip
    results = regenerate_many(shipped, requests)
    kept = [compliance(r[0].song, "AABA").ok for r in results]
    assert sum(kept) >= 0.9 * len(kept)
    assert all(r[0].params["regenerated"]["form"] == "A2 A2 B2 A2" for r in results)
    for (m, bars, options), batched in list(zip(requests, results))[:4]:
        assert shipped.regenerate(m, bars, **options)[0].tokens == batched[0].tokens
    formless = []
    for m, bars, options in requests:
        plain = Melody.from_dict(m.to_dict())
        plain.params["form"] = None
        formless.append(compliance(shipped.regenerate(plain, bars, **options)[0].song, "AABA").ok)
    assert sum(formless) < sum(kept) / 2


def test_a_request_that_fails_while_decoding_fails_alone(generator, melody, monkeypatch):
    """When one request of a pass cannot be decoded (here its masks allow nothing), it gets its
    one-line error and the others of the pass still get what they get alone."""
    from tunesmith.generate import regenerate as regenerate_module
    from tunesmith.generate.controls import TokenMask

    real = regenerate_module.plan_region

    def contradictory(generator_, melody_, config):
        plan, region = real(generator_, melody_, config)
        if config.seed == 99:
            plan.controls.append(TokenMask(torch.zeros(len(generator_.vocab), dtype=torch.bool)))
        return plan, region

    monkeypatch.setattr(regenerate_module, "plan_region", contradictory)
    requests = [(melody, (2, 3), dict(candidates=3, seed=1)), (melody, (4, 5), dict(candidates=3, seed=99)),
                (melody, (6, 7), dict(candidates=3, seed=2))]  # fmt: skip
    results = regenerate_module.regenerate_many(generator, requests, return_errors=True)
    assert isinstance(results[1], TunesmithError) and "allow no token" in str(results[1])
    for i in (0, 2):
        assert [m.tokens for m in results[i]] == [m.tokens for m in generator.regenerate(*requests[i][:2], **requests[i][2])]
