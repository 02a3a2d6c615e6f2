"""What `tunesmith generate` hands a folk musician: ABC, an instrument's range and sound, chords,
humanized playback settings — through the CLI, as written files, and bad values as one line."""

from __future__ import annotations

import json

import mido
import pytest
from synthetic_songs import untrained_checkpoint

from tunesmith.cli import main
from tunesmith.generate.generator import Generator
from tunesmith.instruments import playable_range


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny untrained model whose pitches (MIDI 40..96) reach past every instrument's range."""
    return untrained_checkpoint(tmp_path_factory.mktemp("model") / "wide.pt", low=40, high=96, seed=1)


def test_an_instrument_keeps_every_note_in_its_range(checkpoint):
    generator = Generator.from_checkpoint(checkpoint, device="cpu")
    for name in ("voice", "whistle", "fiddle"):
        low, high = playable_range(name)
        for melody in generator.generate(num=8, bars=8, seed=3, instrument=name, key="E"):
            pitches = [n.pitch for n in melody.song.notes if n.pitch is not None]
            assert pitches and low <= min(pitches) and max(pitches) <= high, name
    unbounded = generator.generate(num=8, bars=8, seed=3, key="E")
    low, high = playable_range("voice")
    assert any(not low <= n.pitch <= high for m in unbounded for n in m.song.notes if n.pitch is not None)


def test_cli_writes_abc_with_chords_and_the_instruments_sound(checkpoint, tmp_path):
    out = tmp_path / "run"
    argv = ["generate", "--model", str(checkpoint), "--bars", "8", "--key", "D", "--meter", "3/4", "--seed", "5",
            "--instrument", "fiddle", "--chords", "--humanize", "0.4", "--formats", "abc,mid,json", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads((out / "melody-01.json").read_text())
    chords = data["song"]["chords"]
    assert chords and all(c["symbol"] and c["roman"] for c in chords)
    assert data["params"]["instrument"] == "fiddle" and data["params"]["export"]["bpm"] == 112.0
    abc = (out / "melody-01.abc").read_text()
    assert "K:Dmaj" in abc and "M:3/4" in abc and "Q:1/4=112" in abc
    assert f'"{chords[0]["symbol"]}"' in abc  # chord symbols in quotes above the notes
    midi = mido.MidiFile(out / "melody-01.mid")
    programs = [m.program for track in midi.tracks for m in track if m.type == "program_change"]
    assert 40 in programs  # GM 41 (violin) is program 40 on the wire, plus the chord track's instrument
    assert len([t for t in midi.tracks if any(m.type == "note_on" for m in t)]) == 2  # tune + chords


@pytest.mark.parametrize("extra, message", [
    (["--humanize", "2"], "--humanize must be in 0..1"),
    (["--instrument", "banjo"], "invalid choice: 'banjo'"),
    (["--chord-span", "beat"], "invalid choice: 'beat'"),
    (["--max-copy", "-1"], "--max-copy must be"),
])  # fmt: skip
def test_bad_output_settings_are_one_line_exit_2(checkpoint, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(["generate", "--model", str(checkpoint), "--out", str(out), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not out.exists()


def test_a_melody_too_high_for_its_instrument_is_refused_when_written(checkpoint, tmp_path, capsys):
    generator = Generator.from_checkpoint(checkpoint, device="cpu")
    melody = generator.generate(bars=4, seed=2, primer="96 _ _ _")[0]
    path = tmp_path / "m.json"
    path.write_text(melody.to_json())
    out = tmp_path / "again"
    assert main(["regenerate", str(path), "--bars", "2-2", "--model", str(checkpoint), "--out", str(out)]) == 0
    from tunesmith.export import write
    from tunesmith.errors import TunesmithError

    with pytest.raises(TunesmithError, match="too high for the voice"):
        write(melody, tmp_path / "m.mid", instrument="voice")
