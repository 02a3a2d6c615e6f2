"""The studio's JSON API with FastAPI's test client and the tiny model: every endpoint, and every
kind of bad input the issue lists (malformed JSON, wrong types, huge numbers, path-like strings,
a 50 MB upload, a binary upload) answered by a clear 4xx, no traceback, the server still serving."""

from __future__ import annotations

import gc
import io
import json
from pathlib import Path

import pytest
from synthetic_songs import sounding as _sounding

pytest.importorskip("fastapi", reason="needs the web extra (pip install -e '.[web]')")
pytest.importorskip("httpx", reason="needs httpx for FastAPI's test client")

DATA = Path(__file__).parent / "data"
PATHS = ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "~/.ssh/id_rsa"]


@pytest.fixture(scope="module")
def client(tiny_checkpoint):
    from fastapi.testclient import TestClient

    from tunesmith.studio.app import create_app

    with TestClient(create_app({"tiny": tiny_checkpoint})) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def indexed_client(tiny_checkpoint, tmp_path_factory):
    """The studio over the tiny model with an originality index of its training songs."""
    from fastapi.testclient import TestClient
    from synthetic_songs import synthetic_dataset

    from tunesmith.originality.__main__ import add_index
    from tunesmith.studio.app import create_app

    folder = tmp_path_factory.mktemp("indexed")
    add_index(tiny_checkpoint, folder / "indexed.pt", dataset=synthetic_dataset(folder / "data"), progress=False)
    with TestClient(create_app({"indexed": folder / "indexed.pt"})) as test_client:
        test_client.checkpoint = folder / "indexed.pt"  # for tests that measure anew what the server answered
        yield test_client


@pytest.fixture(scope="module")
def melody(client) -> dict:
    response = client.post("/api/compose", json={"bars": 4, "meter": "4/4", "key": "D", "seed": 3, "temperature": 0.8})
    assert response.status_code == 200, response.text
    return response.json()["melodies"][0]


def _refused(response, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert "Traceback" not in response.text and "File \"" not in response.text
    if field is not None:
        assert body["error"].startswith(field), body
    return body["error"]


# ---- every endpoint ------------------------------------------------------------------------------
def test_info_lists_the_models_by_name_and_the_limits(client):
    info = client.get("/api/info").json()
    assert [m["name"] for m in info["models"]] == ["tiny"]
    assert set(info["models"][0]["meters"]) >= {"4/4", "3/4", "6/8"}
    assert {"mid", "musicxml", "json", "svg"} <= set(info["formats"])
    assert info["limits"]["num"] == 16 and info["limits"]["bars"] == 128 and info["limits"]["upload_bytes"] == 1 << 20
    assert str(Path.cwd()) not in json.dumps(info)


def test_page_static_files_and_api_docs_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="compose"' in page.text
    for name in ("studio.js", "score.js", "synth.js", "studio.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, no external font
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/compose", "/api/regenerate", "/api/harmonize", "/api/export", "/api/score", "/api/open"} <= set(paths)


def test_compose_gives_num_melodies_in_the_asked_key_and_meter(client):
    response = client.post("/api/compose", json={"num": 3, "bars": 2, "key": "G", "mode": "minor", "meter": "3/4", "seed": 1})
    melodies = response.json()["melodies"]
    assert len(melodies) == 3
    for melody in melodies:
        assert melody["song"]["meter"] == "3/4" and melody["song"]["mode"] == "minor" and melody["song"]["key"] == "G"
        assert len(melody["tokens"]) <= 2 * 12
        assert melody["params"]["model"] == "tiny"  # the name, never the server's path
    again = client.post("/api/compose", json={"num": 3, "bars": 2, "key": "G", "mode": "minor", "meter": "3/4", "seed": 1})
    assert again.json()["melodies"] == melodies


def test_compose_continues_a_token_primer_and_an_abc_primer(client):
    tokens = client.post("/api/compose", json={"bars": 2, "seed": 2, "primer": "62 _ 64 _ F4 _"}).json()
    assert tokens["melodies"][0]["tokens"][:6] == ["62", "_", "64", "_", "65", "_"]
    assert tokens["warnings"] == []
    far = client.post("/api/compose", json={"bars": 2, "seed": 2, "primer": "120 _"}).json()
    assert "outside what the model knows" in far["warnings"][0]
    abc = "X:1\nM:4/4\nL:1/8\nK:C\nCDEF G2G2|\n"
    melody = client.post("/api/compose", json={"bars": 3, "seed": 2, "primer_abc": abc}).json()["melodies"][0]
    assert melody["tokens"][:6] == ["60", "_", "62", "_", "64", "_"]
    assert melody["params"]["primer_file"] == "uploaded ABC"


def test_regenerate_changes_only_the_chosen_bars(client, melody):
    request = {"melody": melody, "bars": [2, 3], "num": 4, "seed": 5, "temperature": 1.2}
    alternatives = client.post("/api/regenerate", json=request).json()["alternatives"]
    assert len(alternatives) == 4
    changed = 0
    for alt in alternatives:
        for bar, (start, end) in enumerate([(0, 16), (16, 32), (32, 48), (48, 64)], start=1):
            same = _sounding(alt["tokens"], start, end) == _sounding(melody["tokens"], start, end)
            assert same or bar in (2, 3), f"bar {bar} changed"
            changed += not same
        assert alt["params"]["studio"]["bars"] == [2, 3]
    assert changed > 0
    assert client.post("/api/regenerate", json=request).json()["alternatives"] == alternatives  # same seed, same result


def test_locked_bars_and_fixed_notes_survive_regeneration(client, melody):
    onsets = [i for i in range(16, 32) if melody["tokens"][i] != "_"]
    fix = {"step": onsets[0], "pitch": 71}
    request = {"melody": melody, "bars": [1, 4], "locked": [1, 3], "fixes": [fix], "num": 3, "seed": 9}
    alternatives = client.post("/api/regenerate", json=request).json()["alternatives"]
    for alt in alternatives:
        assert _sounding(alt["tokens"], 0, 16) == _sounding(melody["tokens"], 0, 16)
        assert _sounding(alt["tokens"], 32, 48) == _sounding(melody["tokens"], 32, 48)
        assert alt["tokens"][fix["step"]] == "71"
    rest = {"step": onsets[-1], "pitch": None}  # the page's "rest" button
    request = {"melody": melody, "bars": [2, 2], "fixes": [rest], "num": 2, "seed": 3}
    for alt in client.post("/api/regenerate", json=request).json()["alternatives"]:
        assert _sounding(alt["tokens"], rest["step"], rest["step"] + 1) == ["r"]  # silent there


def test_a_rest_held_into_a_kept_bar_keeps_it_silent_and_whole(client, melody):
    # bar 3 begins a rest that lasts to the end: after regenerating bar 3, bar 4 is the same rest
    resting = {**melody, "tokens": melody["tokens"][:32] + ["r"] + ["_"] * (len(melody["tokens"]) - 33)}
    request = {"melody": resting, "bars": [3, 3], "num": 2, "seed": 4}
    for alt in client.post("/api/regenerate", json=request).json()["alternatives"]:
        assert len(alt["tokens"]) == len(resting["tokens"]) and alt["song"]["bar_starts"] == melody["song"]["bar_starts"]
        assert alt["tokens"][48:] == ["r"] + ["_"] * (len(resting["tokens"]) - 49)


def test_regenerate_refuses_impossible_requests(client, melody):
    all_locked = client.post("/api/regenerate", json={"melody": melody, "bars": [2, 3], "locked": [2, 3]})
    assert "locked" in _refused(all_locked, 422)
    assert "bars" in _refused(client.post("/api/regenerate", json={"melody": melody, "bars": [3, 9]}), 422)
    _refused(client.post("/api/regenerate", json={"melody": melody, "bars": [3, 2]}), 422, "bars")
    held = next(i for i, t in enumerate(melody["tokens"]) if t == "_")
    bad_fix = client.post("/api/regenerate", json={"melody": melody, "bars": [1, 4], "fixes": [{"step": held, "pitch": 60}]})
    assert "fixes" in _refused(bad_fix, 422)


def test_score_maps_bars_and_notes_to_svg_elements(client, melody):
    view = client.post("/api/score", json={"melody": melody}).json()
    assert view["svg"].startswith("<svg")
    assert [b["number"] for b in view["bars"]] == [1, 2, 3, 4]
    assert all(f'id="{b["id"]}"' in view["svg"] for b in view["bars"])
    onsets = {i for i, t in enumerate(melody["tokens"]) if t != "_"}
    assert onsets <= {n["start"] for n in view["notes"]}
    assert all(f'id="{n["id"]}"' in view["svg"] for n in view["notes"])


def test_export_every_available_format(client, melody):
    import mido

    from tunesmith.generate.melody import Melody

    formats = client.get("/api/info").json()["formats"]
    melody = dict(melody, song=dict(melody["song"], title="../../etc/passwd"))
    for fmt in formats:
        response = client.post("/api/export", json={"melody": melody, "format": fmt, "bpm": 120, "program": 74})
        assert response.status_code == 200, (fmt, response.text)
        disposition = response.headers["content-disposition"]
        assert disposition == f'attachment; filename="etc-passwd.{fmt}"'
        if fmt == "mid":
            midi = mido.MidiFile(file=io.BytesIO(response.content))
            onsets = [m.note for m in mido.merge_tracks(midi.tracks) if m.type == "note_on" and m.velocity > 0]
            assert onsets == [int(t) for t in melody["tokens"] if t.isdigit()]
            assert any(m.type == "program_change" and m.program == 73 for m in mido.merge_tracks(midi.tracks))
        elif fmt == "json":
            assert Melody.from_dict(response.json()).tokens == melody["tokens"]
        elif fmt == "wav":
            assert response.content[:4] == b"RIFF" and response.headers["content-type"] == "audio/wav"
        elif fmt == "musicxml":
            assert b"<score-partwise" in response.content
    assert set(formats) >= {"mid", "musicxml", "abc", "json", "svg"}


def test_export_humanizes_the_performance_on_request(client, melody):
    import mido

    def note_times(humanize):
        response = client.post("/api/export", json={"melody": melody, "format": "mid", "bpm": 100, "humanize": humanize})
        assert response.status_code == 200, response.text
        midi = mido.MidiFile(file=io.BytesIO(response.content))
        clock, times = 0, []
        for message in mido.merge_tracks(midi.tracks):
            clock += message.time
            if message.type == "note_on" and message.velocity > 0:
                times.append(clock)
        return times

    strict, loose = note_times(0.0), note_times(0.8)
    assert len(strict) == len(loose) and strict != loose  # the same notes, played with a drifting pulse
    assert note_times(0.8) == loose  # seeded by the melody's own seed: the same performance again
    _refused(client.post("/api/export", json={"melody": melody, "format": "wav", "humanize": 2}), 422, "humanize")


def test_harmonize_adds_chords_per_bar_or_half_bar(client, melody):
    from tunesmith.harmony import harmonize_with_shipped
    from tunesmith.studio.app import to_melody
    from tunesmith.studio.schemas import MelodyIn

    song = to_melody(MelodyIn.model_validate(melody)).song
    for span, bar_chords in (("bar", 1), ("half", 2)):
        response = client.post("/api/harmonize", json={"melody": melody, "chord_span": span})
        assert response.status_code == 200, response.text
        harmonized = response.json()["melody"]
        chords = harmonized["song"]["chords"]
        assert chords == [vars(c) for c in harmonize_with_shipped(song, span)]  # the shipped harmoniser's chords
        assert all(c["symbol"] for c in chords) and len(chords) <= bar_chords * 4
        assert harmonized["tokens"] == melody["tokens"] and harmonized["params"]["chord_span"] == span
    svg = client.post("/api/score", json={"melody": harmonized}).json()["svg"]
    assert svg.count('class="harm"') == len(chords)  # the chord symbols above the staff
    _refused(client.post("/api/harmonize", json={"melody": melody, "chord_span": "beat"}), 422, "chord_span")


def test_compose_for_an_instrument_keeps_to_its_range(client):
    from tunesmith.instruments import INSTRUMENTS

    voice = INSTRUMENTS["voice"]
    melodies = client.post("/api/compose", json={"num": 4, "bars": 4, "seed": 4, "key": "E", "instrument": "voice",
                                                 "temperature": 1.5}).json()["melodies"]  # fmt: skip
    pitches = [int(t) for m in melodies for t in m["tokens"] if t.isdigit()]
    assert pitches and voice.low <= min(pitches) and max(pitches) <= voice.high
    assert all(m["params"]["instrument"] == "voice" for m in melodies)
    info = client.get("/api/info").json()
    assert {"name": "voice", "program": voice.program, "bpm": voice.bpm, "low": voice.low, "high": voice.high} in info["instruments"]
    _refused(client.post("/api/compose", json={"instrument": "kazoo"}), 422, "instrument")


def test_compose_with_a_form_records_its_phrases(client):
    response = client.post("/api/compose", json={"bars": 8, "seed": 2, "meter": "3/4", "form": "A A' B A"})
    melody = response.json()["melodies"][0]
    assert melody["params"]["form"].replace(" ", "").startswith("A2A'2B2A2")
    assert len(melody["song"]["phrase_starts"]) == 4
    _refused(client.post("/api/compose", json={"bars": 8, "form": "A9Z"}), 422)
    _refused(client.post("/api/compose", json={"form": "../etc/passwd"}), 422, "form")
    # regenerating bars follows the melody's form, and keeps its phrases; a changed form is refused
    answer = client.post("/api/regenerate", json={"melody": melody, "bars": [7, 8], "num": 2, "seed": 1}).json()
    for alternative in answer["alternatives"]:
        assert alternative["params"]["regenerated"]["form"] == melody["params"]["form"]
        assert alternative["song"]["phrase_starts"] == melody["song"]["phrase_starts"]
    broken = {**melody, "params": {**melody["params"], "form": "A2 B2"}}
    assert "form 'A2 B2' lasts" in _refused(client.post("/api/regenerate", json={"melody": broken, "bars": [7, 8], "seed": 1}), 422)
    shuffled = {**melody, "song": {**melody["song"], "phrase_starts": [0, 48, 24]}}
    _refused(client.post("/api/regenerate", json={"melody": shuffled, "bars": [7, 8]}), 422, "melody.song.phrase_starts")


def test_compose_with_chords_uses_the_generators_harmoniser(client):
    request = {"bars": 4, "seed": 6, "meter": "3/4", "chords": True, "chord_span": "bar"}
    melody = client.post("/api/compose", json=request).json()["melodies"][0]
    chords = melody["song"]["chords"]
    assert chords and [c["start"] for c in chords] == [0, 12, 24, 36][: len(chords)]  # one chord per 3/4 bar
    assert melody["params"]["chords"] is True and melody["params"]["chord_span"] == "bar"
    plain = client.post("/api/compose", json=dict(request, chords=False)).json()["melodies"][0]
    assert plain["tokens"] == melody["tokens"] and plain["song"]["chords"] == []  # chords never change the notes
    # Regenerated bars get chords of their own; the kept bars keep theirs.
    alternatives = client.post("/api/regenerate", json={"melody": melody, "bars": [2, 2], "num": 2, "seed": 1}).json()
    for alt in alternatives["alternatives"]:
        assert alt["song"]["chords"] and alt["song"]["chords"][0] == chords[0]


def test_max_copy_is_checked_and_the_copy_is_described(client, indexed_client):
    from tunesmith.generate import Generator, Melody
    from tunesmith.studio import engine

    _refused(client.post("/api/compose", json={"max_copy": -1}), 422, "max_copy")
    melodies = indexed_client.post("/api/compose", json={"num": 3, "bars": 8, "seed": 2, "max_copy": 3}).json()["melodies"]
    for melody in melodies:
        copy = melody["params"]["copy"]
        assert copy["max_copy"] == 3 and copy["exceeds"] is False and 0 <= copy["notes"] <= 3
        assert copy["notes"] == 0 or copy["tune"]  # the nearest training tune is named
    again = indexed_client.post("/api/regenerate", json={"melody": melodies[0], "bars": [3, 4], "num": 2, "seed": 1})
    generator = Generator.from_checkpoint(indexed_client.checkpoint)
    for alt in again.json()["alternatives"]:  # regenerated bars: the copy is that of the notes answered
        assert alt["params"]["copy"]["max_copy"] == 3 and alt["params"]["copy"]["notes"] >= 0
        answered = Melody.from_dict(alt)
        engine.describe_copy(generator, answered, 3)
        assert alt["params"]["copy"] == answered.params["copy"]
    odd = dict(melodies[0], params=dict(melodies[0]["params"], copy="not a dict"))
    assert indexed_client.post("/api/regenerate", json={"melody": odd, "bars": [3, 4], "seed": 1}).status_code == 200
    free = indexed_client.post("/api/compose", json={"bars": 8, "seed": 2}).json()["melodies"][0]
    assert free["params"]["copy"]["max_copy"] >= 1  # the model's own figure when the request names none
    assert "copy" not in client.post("/api/compose", json={"bars": 2, "seed": 2}).json()["melodies"][0]["params"]


def test_open_reads_melody_json_and_corpus_files(client, melody):
    opened = client.post("/api/open", files={"file": ("tune.json", json.dumps(melody).encode())}).json()["melody"]
    assert opened["tokens"] == melody["tokens"]
    abc = client.post("/api/open", files={"file": ("../../etc/passwd.abc", (DATA / "two_tunes.abc").read_bytes())})
    first = abc.json()["melody"]
    assert first["song"]["title"] == "First Tune" and first["song"]["meter"] == "2/4"
    assert [int(t) for t in first["tokens"] if t.isdigit()][:5] == [60, 62, 64, 65, 67]
    assert abc.json()["warnings"] == []
    pickup = client.post("/api/open", files={"file": ("pickup.krn", (DATA / "pickup.krn").read_bytes())}).json()["melody"]
    assert pickup["song"]["bar_starts"][0] > 0
    changing = client.post("/api/open", files={"file": ("jig.abc", (DATA / "meter_change.abc").read_bytes())}).json()
    assert changing["melody"]["song"]["meter"] == "6/8"  # a melody has one meter: the tune's first, and the page says so
    assert [note for note in changing["warnings"] if "changes meter mid-tune" in note and "upload" not in note]
    view = client.post("/api/score", json={"melody": pickup}).json()
    assert view["bars"][0]["number"] == 0  # the pickup bar


# ---- bad input -----------------------------------------------------------------------------------
def test_malformed_json_and_wrong_types_name_the_field(client):
    response = client.post("/api/compose", content=b'{"bars": 4,', headers={"content-type": "application/json"})
    assert "malformed JSON" in _refused(response, 422, "body")
    _refused(client.post("/api/compose", json={"num": "many"}), 422, "num")
    _refused(client.post("/api/compose", json={"bars": [4]}), 422, "bars")
    _refused(client.post("/api/compose", json={"scale": {"a": 1}}), 422, "scale")
    _refused(client.post("/api/compose", json={"mode": "lydian"}), 422, "mode")
    _refused(client.post("/api/compose", json={"surprise": 1}), 422, "surprise")
    _refused(client.post("/api/compose", json=[1, 2]), 422)
    _refused(client.post("/api/regenerate", json={"melody": {"tokens": "60 _"}, "bars": [1, 1]}), 422, "melody")
    _refused(client.post("/api/score", json={"melody": {"tokens": ["60", "x"], "song": {}}}), 422, "melody.tokens")


@pytest.mark.parametrize("field,value", [
    ("num", 17), ("num", 0), ("num", 10**30), ("bars", 129), ("bars", 10**12), ("temperature", 0.0),
    ("temperature", 6), ("temperature", 1e308), ("seed", -1), ("seed", 2**40), ("top_k", 10**6), ("beam_size", 99),
])  # fmt: skip
def test_every_number_is_bounded(client, field, value):
    _refused(client.post("/api/compose", json={field: value}), 422, field)


def test_infinity_and_nan_are_refused(client):
    for literal in (b"Infinity", b"NaN", b"-Infinity"):
        body = b'{"temperature": ' + literal + b"}"
        _refused(client.post("/api/compose", content=body, headers={"content-type": "application/json"}), 422, "temperature")


def test_path_like_strings_are_refused_or_harmless(client, melody):
    for path in PATHS:
        for field in ("model", "key", "meter", "primer", "range"):
            _refused(client.post("/api/compose", json={field: path}), 422, field)
        _refused(client.post("/api/export", json={"melody": melody, "format": path}), 422, "format")
        _refused(client.post("/api/score", json={"model": path, "melody": melody}), 422, "model")
        # Free text is only ever shown or parsed as text: an ABC "primer" that is a path has no tune.
        assert "primer_abc" in _refused(client.post("/api/compose", json={"primer_abc": path}), 422)
        titled = dict(melody, song=dict(melody["song"], title=path, source=path), params={"model": path})
        assert client.post("/api/score", json={"melody": titled}).status_code == 200
        response = client.post("/api/export", json={"melody": titled, "format": "mid"})
        name = response.headers["content-disposition"].split("filename=")[1]
        assert "/" not in name and "\\" not in name and ".." not in name and "~" not in name


def test_unknown_model_name_is_refused(client):
    assert "unknown model" in _refused(client.post("/api/compose", json={"model": "other"}), 422)


def test_huge_and_binary_uploads_are_refused(client):
    huge = client.post("/api/open", files={"file": ("big.abc", b"X" * (50 * 1024 * 1024))})
    assert "over" in _refused(huge, 413)
    just_over = client.post("/api/open", files={"file": ("big.abc", b"%" * (1024 * 1024 + 1))})
    _refused(just_over, 413)

    def streamed():  # no Content-Length: counted while it arrives
        yield b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.abc"\r\n\r\n'
        for _ in range(40):
            yield b"A" * 65536

    chunked = client.post("/api/open", content=streamed(), headers={"content-type": "multipart/form-data; boundary=xx"})
    _refused(chunked, 413)
    binary = bytes(range(256)) * 64
    _refused(client.post("/api/open", files={"file": ("tune.mid", binary)}), 422, "file")
    _refused(client.post("/api/open", files={"file": ("tune.abc", binary)}), 422, "file")
    _refused(client.post("/api/open", files={"file": ("tune.json", binary)}), 422, "file")
    _refused(client.post("/api/open", files={"file": ("tune.exe", b"MZ")}), 415)
    _refused(client.post("/api/open", files={"file": ("tune.json", b'{"format": "other"}')}), 422, "file")
    _refused(client.post("/api/open", data={"nofile": "1"}), 422, "file")
    assert client.get("/api/info").status_code == 200  # still serving


def test_a_timeout_and_an_internal_error_give_clean_json(tiny_checkpoint, monkeypatch):
    import time

    from fastapi.testclient import TestClient

    from tunesmith.studio import engine
    from tunesmith.studio.app import create_app

    def slowed(real):
        def slow(*args, **kwargs):  # slower than the timeout, and sleeping rather than computing
            time.sleep(0.5)
            return real(*args, **kwargs)

        return slow

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail")

    # a batched compose (one melody) and one that runs alone (beam search)
    for body in ({"bars": 1}, {"bars": 1, "scheme": "beam"}):
        monkeypatch.setattr(engine, "compose", slowed(engine.compose))
        monkeypatch.setattr(engine, "compose_batch", slowed(engine.compose_batch))
        slow = TestClient(create_app({"tiny": tiny_checkpoint}, timeout=0.1))
        assert "busy" in _refused(slow.post("/api/compose", json=body), 503)
        time.sleep(0.6)  # the abandoned job ends (it keeps its slot until then) before the test does
        monkeypatch.undo()

        monkeypatch.setattr(engine, "compose", broken)
        monkeypatch.setattr(engine, "compose_batch", broken)
        crashing = TestClient(create_app({"tiny": tiny_checkpoint}))
        response = crashing.post("/api/compose", json=body)
        assert "internal error" in _refused(response, 500) and "secret" not in response.text
        assert crashing.get("/api/info").status_code == 200
        monkeypatch.undo()


def test_serve_command_checks_its_models_and_options(tmp_path, capsys, tiny_checkpoint):
    from tunesmith.cli import main
    from tunesmith.studio.command import model_list

    assert main(["serve", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "no model at" in capsys.readouterr().err
    assert main(["serve", "--model", str(tiny_checkpoint), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    assert main(["serve", "--model", str(tmp_path / "broken.pt")]) == 2
    assert "broken.pt" in capsys.readouterr().err
    assert model_list([str(tiny_checkpoint)]) == {tiny_checkpoint.stem: tiny_checkpoint.resolve()}
    twin = tmp_path / "other"
    twin.mkdir()
    (twin / tiny_checkpoint.name).write_bytes(b"")
    with pytest.raises(Exception, match="two models are named"):
        model_list([str(tiny_checkpoint), str(twin / tiny_checkpoint.name)])


def test_markup_in_a_title_reaches_the_page_only_as_text(client, melody):
    title = '<img src=x onerror=alert(1)></svg><script>alert(2)</script>'
    svg = client.post("/api/score", json={"melody": dict(melody, song=dict(melody["song"], title=title))}).json()["svg"]
    assert "<script" not in svg and "<img" not in svg and "&lt;script&gt;" in svg


def test_worker_processes_build_the_app_from_the_parents_settings(tiny_checkpoint, monkeypatch):
    from fastapi.testclient import TestClient

    from tunesmith.studio.command import ENVIRONMENT, app_from_environment

    settings = {"models": {"tiny": str(tiny_checkpoint)}, "slots": 1, "timeout": 10}
    monkeypatch.setenv(ENVIRONMENT, json.dumps(settings))
    gc.unfreeze()
    try:
        worker = TestClient(app_from_environment())  # what `serve --processes 2` runs in each process
        assert gc.get_freeze_count() > 0  # what it loaded is kept out of the collector's full passes
    finally:
        gc.unfreeze()  # (this test process is no server: let the collector see everything again)
    info = worker.get("/api/info")
    assert [m["name"] for m in info.json()["models"]] == ["tiny"]
    composed = worker.post("/api/compose", json={"bars": 1, "seed": 1})
    assert composed.status_code == 200
    # a generation's answer closes its connection: the client's next request goes to whichever
    # process is free first; other answers keep theirs
    assert composed.headers["connection"] == "close"
    regenerated = worker.post("/api/regenerate", json={"melody": composed.json()["melodies"][0], "bars": [1, 1], "num": 1})
    assert regenerated.status_code == 200 and regenerated.headers["connection"] == "close"
    assert info.headers.get("connection") != "close"


def test_concurrent_composes_share_the_decoding_loop_and_each_seed_gives_its_own_melody(tiny_checkpoint):
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from tunesmith.studio.app import create_app

    app = create_app({"tiny": tiny_checkpoint}, batch_window=0.15)  # an idle loop waits: the requests surely meet
    bodies = [{"bars": 2, "meter": "3/4", "key": "F", "temperature": 1.5, "seed": seed} for seed in range(8)]
    with TestClient(app) as studio:
        alone = [studio.post("/api/compose", json=body).json()["melodies"][0] for body in bodies]
        decoder = app.state.decoders["tiny"]
        one, decoder.peak_rows = decoder.peak_rows, 0  # the rows of one request (its melody, maybe its spare)
        with ThreadPoolExecutor(len(bodies)) as pool:
            together = list(pool.map(lambda body: studio.post("/api/compose", json=body), bodies))
        other = studio.post("/api/compose", json={**bodies[0], "meter": "4/4"}).json()["melodies"][0]
    assert all(r.status_code == 200 for r in together)
    assert decoder.peak_rows > one  # decoded side by side in the shared loop
    assert [r.json()["melodies"][0]["tokens"] for r in together] == [m["tokens"] for m in alone]
    assert [r.json()["melodies"][0]["params"]["seed"] for r in together] == list(range(8))
    assert len({tuple(m["tokens"]) for m in alone}) > 1 and other["song"]["meter"] == "4/4"


def test_concurrent_regenerations_of_different_melodies_and_bars_share_the_loop(tiny_checkpoint):
    """Regenerate requests arriving together (other melodies, other bars, locks, another scheme,
    a bad one) decode side by side, and each gets exactly the answer it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from tunesmith.studio.app import create_app

    app = create_app({"tiny": tiny_checkpoint}, batch_window=0.15)
    with TestClient(app) as studio:
        melodies = [studio.post("/api/compose", json={"bars": 8, "meter": meter, "seed": seed}).json()["melodies"][0]
                    for seed, meter in ((1, "4/4"), (2, "3/4"))]  # fmt: skip
        bodies = [{"melody": melodies[i % 2], "bars": [1 + i, 3 + i], "num": 1 + i % 3, "seed": 10 + i} for i in range(6)]
        bodies[4]["locked"] = [6]
        bodies[5]["scheme"], bodies[5]["temperature"] = "top-k", 1.4
        bodies.append({**bodies[0], "bars": [3, 12]})  # no bar 12: its own error, the others unharmed
        alone = [studio.post("/api/regenerate", json=body) for body in bodies]
        decoder = app.state.decoders["tiny"]
        most, decoder.peak_rows = decoder.peak_rows, 0
        with ThreadPoolExecutor(len(bodies)) as pool:
            together = list(pool.map(lambda body: studio.post("/api/regenerate", json=body), bodies))
    assert decoder.peak_rows > most
    assert sum(a.status_code == 200 for a in alone) >= 5 and alone[-1].status_code == 422
    for one, batched in zip(alone, together, strict=True):
        assert batched.status_code == one.status_code
        if one.status_code == 200:
            assert [m["tokens"] for m in batched.json()["alternatives"]] == [m["tokens"] for m in one.json()["alternatives"]]
        else:
            assert batched.json()["error"] == one.json()["error"]


@pytest.mark.parametrize("fault", ["refusal", "bug"])
def test_a_failing_loop_step_costs_no_request_and_a_stuck_one_gives_503(tiny_checkpoint, monkeypatch, fault):
    """If a step of the shared loop fails, every request in it decodes again alone (so only a
    request that fails alone fails); a request the loop cannot answer in time gets a 503."""
    from fastapi.testclient import TestClient

    from tunesmith.errors import TunesmithError
    from tunesmith.generate.stream import RowStream
    from tunesmith.studio.app import create_app

    body = {"bars": 2, "meter": "3/4", "seed": 3}
    app = create_app({"tiny": tiny_checkpoint})
    with TestClient(app) as studio:
        expected = studio.post("/api/compose", json=body).json()["melodies"][0]["tokens"]  # alone: the loop was idle
        app.state.decoders["tiny"].shortcut = False  # from now on through the shared loop
        real, calls = RowStream.step, []

        def broken(self):
            calls.append(1)
            if len(calls) == 1:
                raise TunesmithError("the model gave NaN scores") if fault == "refusal" else IndexError("a bug")
            return real(self)

        monkeypatch.setattr(RowStream, "step", broken)
        again = studio.post("/api/compose", json=body)
        assert again.status_code == 200 and again.json()["melodies"][0]["tokens"] == expected
        assert calls  # it went through the loop (and then decoded again alone)
    stuck_app = create_app({"tiny": tiny_checkpoint}, timeout=1)
    with TestClient(stuck_app) as studio:
        studio.post("/api/compose", json=body)
        stuck_app.state.decoders["tiny"].shortcut = False
        monkeypatch.setattr(RowStream, "step", lambda self: __import__("time").sleep(0.05))  # never finishes
        stuck = studio.post("/api/compose", json=body)
    assert stuck.status_code == 503 and "busy" in stuck.json()["error"]


def test_preload_warms_each_model_before_the_first_request(indexed_client):
    """``serve`` builds its app with ``preload``: the model is loaded and has composed once, so
    the originality index and the folded weights are ready before the first musician asks."""
    from tunesmith.studio.app import create_app

    app = create_app({"indexed": indexed_client.checkpoint}, preload=True)
    generator = app.state.models.get("indexed")
    assert generator._originality is not None  # loaded by the warm-up, not by this test
    assert generator.model._folded_cache is not None  # the step's lookup tables were built by the warm-up
    cold = create_app({"indexed": indexed_client.checkpoint}).state.models
    assert not cold._loaded  # without preload nothing is loaded until a request needs it


def test_preload_warms_a_model_that_knows_no_common_meter(tmp_path):
    """A model of jigs alone (6/8 only) starts: the warm-up composes in a meter it knows."""
    from fastapi.testclient import TestClient
    from synthetic_songs import untrained_checkpoint

    from tunesmith.studio.app import create_app

    path = untrained_checkpoint(tmp_path / "jigs.pt", meters=["6/8"])
    with TestClient(create_app({"jigs": path}, preload=True)) as jigs:
        melody = jigs.post("/api/compose", json={"bars": 2, "meter": "6/8", "seed": 1}).json()["melodies"][0]
        assert melody["song"]["meter"] == "6/8" and sum(steps for _, steps in melody["song"]["notes"]) > 0
        assert "4/4" in _refused(jigs.post("/api/compose", json={"bars": 2, "meter": "4/4"}), 422)


def test_compose_keeps_the_critics_choice_of_its_candidates(tiny_checkpoint, tmp_path):
    from fastapi.testclient import TestClient
    from synthetic_songs import synthetic_song

    from tunesmith.checkpoint import Checkpoint
    from tunesmith.critic import EXTRA_KEY, CriticConfig, fit_critic
    from tunesmith.generate import GenerationConfig, Generator
    from tunesmith.studio.app import create_app

    path = tmp_path / "critic.pt"
    checkpoint = Checkpoint.load(tiny_checkpoint)
    critic = fit_critic(Generator.from_checkpoint(tiny_checkpoint, "cpu"), [synthetic_song(i) for i in range(24)],
                        CriticConfig(trees=5, min_leaf=2))  # fmt: skip
    checkpoint.extra[EXTRA_KEY] = critic.to_plain()
    checkpoint.save(path)
    with TestClient(create_app({"judged": path})) as client:
        _refused(client.post("/api/compose", json={"candidates": 9}), 422, "candidates")
        _refused(client.post("/api/compose", json={"candidates": 0}), 422, "candidates")
        request = {"bars": 4, "seed": 5, "key": "C", "mode": "major", "meter": "4/4", "candidates": 3}
        melody = client.post("/api/compose", json=request).json()["melodies"][0]
        assert melody["params"]["candidates"] == 3 and melody["params"]["candidate"] in (0, 1, 2)
        assert 0.0 <= melody["params"]["critic"] <= 1.0
        # the very melody the generator keeps for these settings (the CLI's)
        alone = Generator.from_checkpoint(path, "cpu").generate(GenerationConfig(**request))[0]
        assert melody["tokens"] == alone.tokens
        single = client.post("/api/compose", json=dict(request, candidates=1)).json()["melodies"][0]
        assert "critic" not in single["params"] and single["params"]["candidates"] == 1


def test_each_server_process_takes_a_core_of_its_own(tmp_path, monkeypatch):
    import os

    from tunesmith.studio import command

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("cores are pinned on Linux only")
    pinned = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5})
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: pinned.append(set(cores)))
    monkeypatch.setattr(command, "_HELD", [])
    try:
        # three processes of one server, two cores: the first two get one each, the third none
        assert [command.own_core(tmp_path) for _ in range(3)] == [3, 5, None]
        assert pinned == [{3}, {5}]
        command._HELD.pop(0).close()  # the process on core 3 ended: the next one started takes it
        assert command.own_core(tmp_path) == 3
    finally:
        for handle in command._HELD:
            handle.close()
    assert command.pinnable(2) and not command.pinnable(3) and not command.pinnable(1)  # one process per core


# ---- found by probing the API: each a clear 4xx or a usable file, never a 500 ----------------------
def _with_song(melody: dict, **song) -> dict:
    return {**melody, "song": {**melody["song"], **song}}


def test_chords_must_name_a_known_quality_and_a_symbol(client, melody):
    chord = {"start": 0, "steps": 16, "root": 2, "quality": "maj", "roman": "I", "symbol": "D"}
    ok = {"melody": _with_song(melody, chords=[chord]), "format": "mid"}
    assert client.post("/api/export", json=ok).status_code == 200
    for bad in ({"quality": "zz"}, {"quality": ""}, {"symbol": ""}, {"symbol": "zz"}):
        request = {"melody": _with_song(melody, chords=[{**chord, **bad}]), "format": "mid"}
        _refused(client.post("/api/export", json=request), 422, "melody.song.chords.0")
    unnamed = _with_song(melody, chords=[{k: v for k, v in chord.items() if k != "symbol"}])
    _refused(client.post("/api/score", json={"melody": unnamed}), 422, "melody.song.chords.0.symbol")


def test_titles_are_one_line_and_any_alphabet_exports(client, melody):
    for title in ("a\x07b", "T\nK:Gb", "\r\nX:1"):
        _refused(client.post("/api/export", json={"melody": _with_song(melody, title=title), "format": "abc"}), 422,
                 "melody.song.title")  # fmt: skip
    for fmt in ("mid", "abc", "musicxml"):
        titled = _with_song(melody, title="中文 🎻 Ünïcödé")
        response = client.post("/api/export", json={"melody": titled, "format": fmt})
        assert response.status_code == 200 and len(response.content) > 100
    midi = client.post("/api/export", json={"melody": _with_song(melody, title="中文 Ünï")}).content
    assert "?? Ünï".encode("latin-1") in midi  # MIDI text is Latin-1: the rest of the title as "?"


def test_a_meter_with_no_note_value_is_refused(client, melody):
    for meter in ("3/6", "99/99"):
        odd = {"melody": _with_song(melody, meter=meter), "format": "mid"}
        _refused(client.post("/api/export", json=odd), 422, "melody.song")
    opened = client.post("/api/open", files={"file": ("odd.abc", b"X:1\nT:Odd\nM:3/6\nL:1/8\nK:C\nCDE|FGA|\n")})
    assert "meter" in _refused(opened, 422, "file")


def test_open_takes_odd_json_and_refuses_what_the_studio_cannot_use(client, melody):
    bom = client.post("/api/open", files={"file": ("tune.json", b"\xef\xbb\xbf" + json.dumps(melody).encode())})
    assert bom.json()["melody"]["tokens"] == melody["tokens"]
    _refused(client.post("/api/open", files={"file": ("deep.json", b"[" * 100_000 + b"]" * 100_000)}), 422, "file")
    titled = b"X:1\nT:" + b"x" * 500 + b"\nM:4/4\nL:1/4\nK:C\nCDEF|\n"
    long_title = client.post("/api/open", files={"file": ("t.abc", titled)})
    assert long_title.json()["melody"]["song"]["title"] == "x" * 200  # what every other call takes
    long_tune = b"X:1\nT:Long\nM:4/4\nL:1/16\nK:C\n" + b"CDEF" * 4 * 300 + b"\n"  # 300 bars of 16ths
    assert "4096 steps" in _refused(client.post("/api/open", files={"file": ("long.abc", long_tune)}), 422, "file")
    broken = client.post("/api/open", files={"file": ("t.abc", b"X:1\nT:T\nM:4/4\nL:1/4\nK:C\nC D3/7 E|\n")})
    assert "primer" not in _refused(broken, 422, "file")  # "file: unaccepted duration (…)", not the primer's words


def test_a_melody_the_studio_wrote_opens_again(client):
    # 6/8 with a note of two and a half quarters (a dotted half tied to an eighth): MIDI and ABC round trips
    tokens = ["67"] + ["_"] * 9 + ["69", "_"] + ["71"] + ["_"] * 11
    song = {"meter": "6/8", "bar_starts": [0, 12], "key": "C", "mode": "major", "steps_per_quarter": 4}
    written = {"format": "tunesmith-melody", "version": 1, "tokens": tokens, "song": song, "params": {}}
    for fmt, suffix in (("mid", "mid"), ("abc", "abc"), ("musicxml", "musicxml")):
        data = client.post("/api/export", json={"melody": written, "format": fmt}).content
        opened = client.post("/api/open", files={"file": (f"back.{suffix}", data)}).json()["melody"]
        assert opened["tokens"] == tokens and opened["song"]["meter"] == "6/8", fmt


def test_primer_abc_keeps_the_files_meter_and_mode_unless_the_request_names_them(client):
    abc = "X:1\nM:6/8\nL:1/8\nK:Am\nABc e2d|\n"
    own = client.post("/api/compose", json={"bars": 4, "seed": 3, "primer_abc": abc}).json()["melodies"][0]
    assert own["song"]["meter"] == "6/8" and own["song"]["mode"] == "minor"
    named = client.post("/api/compose", json={"bars": 4, "seed": 3, "primer_abc": abc, "meter": "3/4"}).json()
    assert named["melodies"][0]["song"]["meter"] == "3/4"


def test_long_wavs_and_doubly_fixed_notes_are_refused(client, melody):
    if "wav" in client.get("/api/info").json()["formats"]:
        long_tune = {**melody, "tokens": (["62"] + ["_"] * 15) * 128}
        _refused(client.post("/api/export", json={"melody": long_tune, "format": "wav", "bpm": 20}), 422, "bpm")
    onset = next(i for i in range(16, 32) if melody["tokens"][i] != "_")
    fixes = [{"step": onset, "pitch": 71}, {"step": onset, "pitch": 72}]
    request = {"melody": melody, "bars": [2, 2], "fixes": fixes, "num": 1, "seed": 1}
    assert "two different pitches" in _refused(client.post("/api/regenerate", json=request), 422, "fixes")


def test_errors_name_request_fields_not_command_line_flags(client):
    message = _refused(client.post("/api/compose", json={"form": "A4 B4 A4", "bars": 8}), 422)
    assert "--" not in message and "bars" in message


def test_work_past_its_deadline_stops_between_its_stages(tiny_checkpoint, melody):
    """A request answered 503 (too slow) does not go on decoding run after run for nobody."""
    import time

    from tunesmith.errors import TunesmithError
    from tunesmith.generate import Generator
    from tunesmith.studio import engine
    from tunesmith.studio.app import to_melody
    from tunesmith.studio.schemas import MelodyIn

    generator = Generator.from_checkpoint(tiny_checkpoint, "cpu")
    job = engine.Regeneration(to_melody(MelodyIn.model_validate(melody)), (1, 4), 2, 1, {}, {2}, [])  # two runs
    with engine.deadline(time.monotonic() + 60):
        assert len(engine.regenerate_batch(generator, "tiny", [job])[0]) == 2
    with engine.deadline(time.monotonic() - 1), pytest.raises(TunesmithError, match="ran out of time"):
        engine.regenerate_batch(generator, "tiny", [job])
    assert not engine.out_of_time()  # the block's deadline is gone after it
