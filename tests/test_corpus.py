"""Corpus stage: one tiny fixture per musical feature, read through music21 and encoded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.config import CorpusConfig, EncodingConfig
from tunesmith.corpus import prepare
from tunesmith.corpus.reader import make_jobs, read_job
from tunesmith.corpus.sources import SourceFile, bundled_corpora, resolve_sources
from tunesmith.encoding import encode_notes
from tunesmith.errors import TunesmithError
from tunesmith.song import Song, bar_steps, step_positions

DATA = Path(__file__).parent / "data"
SETTINGS = {"steps_per_quarter": 4, "accepted_durations": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]}
KERN_ERK = Path(__file__).resolve().parents[2] / "shared" / "data" / "essen-deutschl-kern" / "erk"


def read(name: str) -> list[dict]:
    path = DATA / name
    return [read_job(job, SETTINGS) for job in make_jobs(SourceFile(path, str(path)))]


def song_of(name: str) -> tuple[Song, dict]:
    (result,) = read(name)
    assert "song" in result, result
    return Song.from_dict(result["song"]), result["counts"]


def tokens_of(name: str) -> str:
    return " ".join(encode_notes(song_of(name)[0].notes))


def test_tied_notes_merge_into_one_note_across_the_bar_line():
    # c d [g (half, tied over the bar to a quarter) r e(half) | c(whole)
    assert tokens_of("tie.krn") == (
        "60 _ _ _ 62 _ _ _ 67 _ _ _ _ _ _ _ _ _ _ _ r _ _ _ 64 _ _ _ _ _ _ _ 60" + " _" * 15
    )


def test_an_abc_accidental_holds_to_the_bar_line_and_over_a_tie():
    # K:G  ^G G =F F | F _B B =B | B2 ^c2- | c2 F2  (music21 alone reads G♯ G, F F♯ and B♭ B)
    song, _ = song_of("carried_accidentals.abc")
    sounding = [n.pitch - song.transposition for n in song.notes]
    assert sounding == [68, 68, 65, 65, 66, 70, 70, 71, 71, 73, 66]
    assert [n.steps for n in song.notes][-3:] == [8, 16, 8]  # the tied C♯ is one note over the bar line


def test_pickup_bar_keeps_bar_positions_and_major_goes_to_c():
    song, _ = song_of("pickup.krn")
    assert (song.key, song.mode, song.transposition) == ("G", "major", 5)  # up a fourth, not down a fifth
    assert song.bar_starts == [4, 16]  # a one-beat pickup, then full 3/4 bars of 12 steps
    positions = step_positions(song.bar_starts, song.total_steps, bar_steps(song.meter, 4))
    assert positions[:6] == [8, 9, 10, 11, 0, 1]
    assert encode_notes(song.notes)[:5] == ["67", "_", "_", "_", "72"]  # D4 → G4, G4 → C5


def test_stated_minor_mode_is_used_and_goes_to_a():
    song, _ = song_of("minor_stated.krn")
    assert (song.key, song.mode, song.transposition) == ("E", "minor", 5)
    assert encode_notes(song.notes)[0] == "69"  # E4 → A4


def test_six_eight_meter_has_twelve_step_bars():
    song, _ = song_of("compound_6_8.krn")
    assert song.meter == "6/8" and bar_steps(song.meter, 4) == 12
    assert song.bar_starts == [0, 12]
    assert tokens_of("compound_6_8.krn") == "60 _ 62 _ 64 _ 65 _ _ _ 64 _ 62 _ _ _ _ _ 60 _ _ _ _ _"


def test_abc_file_with_two_tunes_gives_two_songs():
    results = read("two_tunes.abc")
    songs = [Song.from_dict(r["song"]) for r in results]
    assert [s.title for s in songs] == ["First Tune", "Second Tune"]
    assert [(s.mode, s.meter) for s in songs] == [("major", "2/4"), ("minor", "3/4")]
    assert songs[0].source.endswith("two_tunes.abc#1") and songs[1].source.endswith("two_tunes.abc#2")


def test_triplet_is_rejected_with_its_reason():
    (result,) = read("triplet.krn")
    assert result["reason"] == "unaccepted duration"
    assert "1/3" in result["detail"]


def test_chord_becomes_its_top_note_and_is_counted():
    song, counts = song_of("chord.krn")
    assert encode_notes(song.notes)[4] == "67"  # c-e-g chord → G4
    assert counts["chords_to_top_note"] == 1


def test_grace_note_is_dropped_and_counted():
    song, counts = song_of("grace.krn")
    assert encode_notes(song.notes) == "60 _ _ _ 64 _ _ _ 60 _ _ _ _ _ _ _".split()
    assert counts["grace_notes_dropped"] == 1


def test_musicxml_is_read_with_its_tie_and_key():
    song, _ = song_of("tie.musicxml")
    assert (song.title, song.key, song.mode, song.meter) == ("MusicXML Song", "F", "major", "2/4")
    assert " ".join(encode_notes(song.notes)) == "60 _ _ _ 64 _ _ _ _ _ _ _ 67 _ _ _ 60 _ _ _ _ _ _ _"


def test_midi_file_is_read(tmp_path):
    from music21 import meter, note, stream

    part = stream.Part([meter.TimeSignature("3/4")])
    for name, length in [("D4", 1.0), ("F#4", 1.0), ("A4", 1.0), ("D5", 3.0)]:
        part.append(note.Note(name, quarterLength=length))
    path = tmp_path / "arpeggio.mid"
    part.write("midi", fp=str(path))
    (result,) = [read_job(job, SETTINGS) for job in make_jobs(SourceFile(path, str(path)))]
    song = Song.from_dict(result["song"])
    assert song.meter == "3/4" and song.mode == "major"
    intervals = [b.pitch - a.pitch for a, b in zip(song.notes, song.notes[1:])]
    assert intervals == [4, 3, 5] and song.notes[0].pitch % 12 == 0  # D major arpeggio → C major


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("corrupt/binary.krn", "binary file"),
        ("corrupt/empty.abc", "empty file"),
        ("corrupt/no_notes.abc", "no notes"),
        ("corrupt/garbage.xml", "unreadable"),
        ("corrupt/README.txt", "unsupported format"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(name, reason):
    (result,) = read(name)
    assert result["reason"] == reason and result["detail"]


def test_folder_with_corrupt_files_keeps_the_good_one_and_counts_the_rest(tmp_path):
    corpus = CorpusConfig(sources=[str(DATA / "corrupt")], cache_dir=str(tmp_path), workers=1)
    dataset = prepare(corpus, EncodingConfig(), progress=False)
    report = dataset.report
    assert report["songs_kept"] == 1 and report["songs_rejected"] == 5
    assert report["rejected_by_reason"] == {
        "binary file": 1, "empty file": 1, "no notes": 1, "unreadable": 1, "unsupported format": 1,
    }  # fmt: skip
    assert json.loads((dataset.folder / "report.json").read_text())["songs_kept"] == 1


def test_nothing_usable_is_a_clear_error(tmp_path):
    corpus = CorpusConfig(sources=[str(DATA / "triplet.krn")], cache_dir=str(tmp_path), workers=1)
    with pytest.raises(TunesmithError, match="no usable songs.*1 unaccepted duration"):
        prepare(corpus, EncodingConfig(), progress=False)


def test_unknown_source_lists_what_exists():
    with pytest.raises(TunesmithError, match="no such file, folder or bundled corpus: 'essen/nope'.*essen/erk"):
        resolve_sources(["essen/nope"])


def test_bundled_names_cover_the_essen_collection():
    names = bundled_corpora()
    assert [p.name for p in names["essen/erk"]] == ["erk10.abc", "erk20.abc", "erk30.abc", "erk5.abc"]
    assert set(names["essen/erk"]) < set(names["essen/german"])
    assert "essen/han1" in names and not any(p.stem.startswith("han") for p in names["essen/german"])


def test_prepare_is_cached_and_reports(tmp_path):
    corpus = CorpusConfig(sources=[str(DATA)], cache_dir=str(tmp_path), workers=1, val_fraction=0.3)
    first = prepare(corpus, EncodingConfig(), progress=False)
    second = prepare(corpus, EncodingConfig(), progress=False)
    assert first.report["cache"] == "miss" and second.report["cache"] == "hit"
    assert [e.tokens for e in first.examples] == [e.tokens for e in second.examples]
    assert first.vocab == second.vocab
    report = second.report
    assert report["songs_kept"] + report["songs_rejected"] == report["songs_read"]
    assert report["split"]["train"]["songs"] + report["split"]["val"]["songs"] == report["songs_kept"]
    assert report["modes"]["minor"] >= 2  # minor_stated.krn and the second ABC tune


def test_changing_encoding_settings_rebuilds(tmp_path):
    corpus = CorpusConfig(sources=[str(DATA / "pickup.krn")], cache_dir=str(tmp_path), workers=1)
    coarse = prepare(corpus, EncodingConfig(steps_per_quarter=2), progress=False)
    fine = prepare(corpus, EncodingConfig(steps_per_quarter=4), progress=False)
    assert len(fine.examples[0].tokens) == 2 * len(coarse.examples[0].tokens)


def test_cli_prepare_and_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "dataset"
    assert main(["prepare", "--corpus", str(DATA / "two_tunes.abc"), "--out", str(out), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs_kept"] == 2
    assert (out / "vocab.json").is_file() and (out / "dataset.json").is_file()
    assert main(["prepare", "--corpus", str(tmp_path / "missing.krn")]) == 2
    assert "no such file, folder or bundled corpus" in capsys.readouterr().err
    assert main(["prepare", "--set", "corpus.val_fraction=2"]) == 2
    assert "corpus.val_fraction must be in [0, 1), got 2" in capsys.readouterr().err


@pytest.mark.skipif(not KERN_ERK.is_dir(), reason="../shared/data/essen-deutschl-kern/erk is not present")
def test_real_kern_files_from_shared_data(tmp_path):
    files = sorted(KERN_ERK.glob("*.krn"))[:12]
    corpus = CorpusConfig(sources=[str(f) for f in files], cache_dir=str(tmp_path), workers=1)
    dataset = prepare(corpus, EncodingConfig(), progress=False)
    assert dataset.report["songs_read"] == 12
    assert dataset.report["songs_kept"] + dataset.report["songs_rejected"] == 12
    assert dataset.report["songs_kept"] >= 10
    for example in dataset.examples:
        assert example.song.mode in ("major", "minor")
        assert encode_notes(example.song.notes) == example.tokens


def _tune(number: int, title: str, body: str) -> str:
    return f"X:{number}\nT:{title}\nM:4/4\nL:1/8\nK:C\n{body}|]\n"


def test_train_sources_add_training_songs_and_leave_out_validation_tunes(tmp_path, monkeypatch, capsys):
    from tunesmith.corpus.split import is_validation, normalise_title

    titles = [f"Lied vom {word}" for word in ("Apfel", "Baum", "Dorf", "Feld", "Hof", "Wald", "Berg", "See", "Tal", "Fluss", "Stern", "Mond")]
    held = next(t for t in titles if is_validation(normalise_title(t), 0.5))
    free = [t for t in titles if not is_validation(normalise_title(t), 0.5)][:3]
    melody = "CDEF GABc|dcBA GFED|C8"  # 17 notes: a run of 10 intervals and more
    other = "EEGG AAGE|FFEE DDC2|C8"
    main_file = tmp_path / "main.abc"
    main_file.write_text(_tune(1, held, melody) + "\n" + _tune(2, free[0], other))
    extra_file = tmp_path / "extra.abc"
    extra_file.write_text(
        _tune(1, held + " (Var. 2)", other)  # a validation title: left out
        + "\n" + _tune(2, free[1], "cdef gabc'|d'c'ba gfed|c8")  # the held-out melody an octave up: left out
        + "\n" + _tune(3, free[2], "G2E2 G2E2|F2D2 F2D2|C8")  # a new tune: kept for training
    )  # fmt: skip
    corpus = CorpusConfig(sources=[str(main_file)], train_sources=[str(extra_file), str(main_file)],
                          cache_dir=str(tmp_path / "cache"), workers=1, val_fraction=0.5)  # fmt: skip
    dataset = prepare(corpus, EncodingConfig(), progress=False)
    assert [e.song.title for e in dataset.split("val")] == [held]
    assert sorted(e.song.title for e in dataset.split("train")) == sorted([free[0], free[2]])
    assert dataset.report["train_only"] == {"kept": 1, "left_out": {"validation title": 1, "validation melody": 1}}
    assert {e.song.title: e.extra for e in dataset.split("train")} == {free[0]: False, free[2]: True}
    again = prepare(corpus, EncodingConfig(), progress=False)
    assert again.report["cache"] == "hit" and [e.extra for e in again.examples] == [e.extra for e in dataset.examples]
    assert dataset.report["songs_read"] == 5  # main.abc, listed again among train_sources, is read once
    assert dataset.report["songs_kept"] + dataset.report["songs_rejected"] + 2 == dataset.report["songs_read"]
    plain = prepare(CorpusConfig(sources=[str(main_file)], cache_dir=str(tmp_path / "cache"), workers=1,
                                 val_fraction=0.5), EncodingConfig(), progress=False)  # fmt: skip
    assert plain.folder != dataset.folder and "train_only" not in plain.report
    assert [e.tokens for e in plain.split("val")] == [e.tokens for e in dataset.split("val")]
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["prepare", "--corpus", str(main_file), "--set", f"corpus.train_sources=[{str(extra_file)!r}]",
                 "--set", "corpus.val_fraction=0.5", "--set", f"corpus.cache_dir={str(tmp_path / 'cli')!r}"]) == 0
    shown = capsys.readouterr().out
    assert f"│ training only                 │ {extra_file}: 1 songs kept" in shown
    assert "│   left out: validation melody │ 1 " in shown and "│ split val                     │ 1 songs" in shown
