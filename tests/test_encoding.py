"""Encoding: round trips, the deterministic vocabulary, the grouped split, positions, config."""

from __future__ import annotations

import json

import pytest

from tunesmith.config import Config, apply_overrides, load_preset, to_toml
from tunesmith.corpus.split import assign_splits, is_validation, normalise_title
from tunesmith.encoding import END, START, Vocabulary, decode_tokens, encode_notes
from tunesmith.errors import TunesmithError
from tunesmith.song import Note, Song, regular_bar_starts, step_positions, transposition_to


@pytest.mark.parametrize(
    "tokens",
    [
        "60 _ _ _ 62 _ 64 _ r _ 65 _ _ _".split(),
        "r _ 72 _ _ 71 r 69".split(),
        ["60"],
    ],
)
def test_encode_decode_encode_gives_the_same_tokens(tokens):
    notes = decode_tokens(tokens)
    assert encode_notes(notes) == tokens
    assert encode_notes(decode_tokens(encode_notes(notes))) == tokens


def test_rests_merge_and_trailing_rests_go():
    notes = [Note(60, 2), Note(None, 1), Note(None, 3), Note(62, 1), Note(None, 4)]
    assert encode_notes(notes) == ["60", "_", "r", "_", "_", "_", "62"]


def test_decode_stops_at_end_and_skips_start():
    assert decode_tokens([START, "60", "_", END, "62"]) == [Note(60, 2)]


def test_decode_rejects_unknown_token():
    with pytest.raises(TunesmithError, match="unknown token 'x'"):
        decode_tokens(["60", "x"])


def test_vocabulary_is_sorted_and_independent_of_order(tmp_path):
    a = Vocabulary.build([["72", "_", "60"], ["r", "64"]])
    b = Vocabulary.build([["64", "r"], ["60", "_", "72"]])
    assert a == b
    assert a.tokens == ["<pad>", "<s>", "</s>", "_", "r", "60", "64", "72"]
    a.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == a
    assert json.loads((tmp_path / "vocab.json").read_text())["tokens"] == a.tokens
    assert a.nearest_pitch(62) == 60 and a.nearest_pitch(70) == 72 and a.nearest_pitch(90) == 72


def test_song_round_trips_through_a_dict():
    song = Song([Note(60, 4), Note(None, 2)], meter="3/4", bar_starts=[4, 16], mode="minor", title="x")
    assert Song.from_dict(json.loads(json.dumps(song.to_dict()))) == song


def test_titles_normalise_so_variants_group_together():
    assert normalise_title("ES FREIT EIN WILDER WASSERMANN") == normalise_title("Es freit ein wilder Wassermann (Var. 2)")
    assert normalise_title("Schöne Müllerin!") == "schoene muellerin"


def test_split_is_deterministic_grouped_and_near_the_ratio():
    groups = [f"tune {i // 3}" for i in range(3000)]  # 1000 titles, three variants each
    splits = assign_splits(groups, 0.1, seed=0)
    assert splits == assign_splits(groups, 0.1, seed=0)
    by_group: dict[str, set[str]] = {}
    for group, split in zip(groups, splits):
        by_group.setdefault(group, set()).add(split)
    assert all(len(sides) == 1 for sides in by_group.values())  # variants never straddle
    share = splits.count("val") / len(splits)
    assert 0.07 < share < 0.13
    assert splits != assign_splits(groups, 0.1, seed=1)
    assert is_validation("tune 1", 0.0) is False


def test_positions_count_back_through_a_pickup_and_wrap():
    assert step_positions([4, 16], 20, 12) == [8, 9, 10, 11] + list(range(12)) + [0, 1, 2, 3, 4]
    assert regular_bar_starts(40, 16, pickup_steps=4) == [0, 4, 20, 36]
    assert regular_bar_starts(40, 16) == [0, 16, 32]


@pytest.mark.parametrize(("tonic", "mode", "shift"), [(7, "major", 5), (2, "major", -2), (6, "major", 6 - 12),
                                                      (4, "minor", 5), (0, "minor", -3), (9, "minor", 0)])  # fmt: skip
def test_transposition_takes_the_nearest_octave(tonic, mode, shift):
    assert transposition_to(tonic, mode) == shift
    assert -6 <= shift <= 5


def test_overrides_parse_and_validate():
    config = apply_overrides(Config(), ["model.hidden=64", "corpus.sources=['a', 'b']", "train.device=cpu"])
    assert config.model.hidden == 64 and config.corpus.sources == ["a", "b"]
    with pytest.raises(TunesmithError, match="unknown setting 'model.hiden'"):
        apply_overrides(Config(), ["model.hiden=3"])
    with pytest.raises(TunesmithError, match="model.hidden must be an integer, got 'big'"):
        apply_overrides(Config(), ["model.hidden=big"])
    with pytest.raises(TunesmithError, match="must look like section.key=value"):
        apply_overrides(Config(), ["hidden"])


def test_config_round_trips_through_toml(tmp_path):
    config = apply_overrides(Config(), ["model.dropout=0.25", "corpus.sources=['essen/erk', 'x y']"])
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    assert load_preset(str(path)) == config


def test_unknown_preset_lists_known_ones():
    with pytest.raises(TunesmithError, match="unknown preset 'nope'"):
        load_preset("nope")
