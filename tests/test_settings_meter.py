"""Settings derived from dataclass fields (flags, help, bounds) and bar geometry in one place."""

import argparse
from dataclasses import dataclass, field

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.meter import bar_lines, bar_of_steps, bar_spans, full_bar_starts, song_bar_starts
from tunesmith.settings import add_fields, bounds, check_fields, field_comments, from_args
from tunesmith.song import Note, Song, note_number, pitch_name


@dataclass
class Demo:
    """A config for the tests."""

    speed: float = field(default=1.0, metadata=bounds(0.0, 10.0, low_open=True))  # how fast, > 0
    count: int | None = field(default=None, metadata=bounds(1, 8))  # how many (default: all)
    name: str = field(default="a", metadata={"choices": ("a", "b")})  # which one
    loud: bool = False  # play it loud


def test_flags_help_and_round_trip():
    assert field_comments(Demo) == {"speed": "how fast, > 0", "count": "how many (default: all)",
                                    "name": "which one", "loud": "play it loud"}  # fmt: skip
    parser = argparse.ArgumentParser()
    add_fields(parser, Demo)
    assert "how fast, > 0 (default 1.0)" in parser.format_help()
    assert from_args(Demo, parser.parse_args([])) == Demo()
    assert from_args(Demo, parser.parse_args(["--speed", "2.5", "--count", "3", "--name", "b", "--loud"])) == Demo(
        2.5, 3, "b", True)  # fmt: skip
    with pytest.raises(SystemExit):
        parser.parse_args(["--count", "2.5"])


@pytest.mark.parametrize("value, message", [
    (Demo(speed=0.0), "--speed must be in (0, 10]"),
    (Demo(speed=float("nan")), "--speed must be a finite number"),
    (Demo(speed="fast"), "--speed must be a number"),
    (Demo(count=9), "--count must be in 1..8"),
    (Demo(count=True), "--count must be a whole number"),
    (Demo(name="c"), "--name must be one of a, b"),
    (Demo(loud=1), "--loud must be true or false"),
])  # fmt: skip
def test_bounds_and_types_are_one_line_errors(value, message):
    with pytest.raises(TunesmithError) as info:
        check_fields(value)
    assert str(info.value).startswith(message)


def song(bar_starts, steps, meter="4/4"):
    return Song(notes=[Note(60, 1)] * steps, meter=meter, bar_starts=bar_starts)


def test_bar_geometry_with_a_pickup_and_regular_bars_after_the_last_known_line():
    assert full_bar_starts([4, 20], 60, 16) == [4, 20, 36, 52]
    assert full_bar_starts([], 40, 16) == [0, 16, 32]
    pickup = song([4, 20], 40)
    assert song_bar_starts(pickup) == [4, 20, 36]
    assert bar_lines(pickup) == [0, 4, 20, 36, 52]
    assert bar_spans(pickup) == {0: (0, 4), 1: (4, 20), 2: (20, 36), 3: (36, 40)}
    assert bar_spans(song([], 24, "3/4")) == {1: (0, 12), 2: (12, 24)}
    assert bar_of_steps([4, 20], 6) == [-1, -1, -1, -1, 0, 0, 0]
    assert bar_lines(Song(notes=[])) == [0, 16]


def test_pitch_names_once():
    assert [note_number(n) for n in ("C4", "Bb3", "F#5", "e-4", "67")] == [60, 58, 78, 63, 67]
    assert [pitch_name(p) for p in (60, 70, 61)] == ["C4", "Bb4", "C#4"]
    for bad in ("H4", "C99"):
        with pytest.raises(ValueError):
            note_number(bad)
