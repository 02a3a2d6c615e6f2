"""The studio in a real browser: Debian's headless Chromium driven by Selenium (nothing downloads a
browser). Compose, select bars 3–4 by dragging, regenerate, keep an alternative, check that only
those bars changed, play, download the MIDI and read it back. A screenshot of every step is saved
under tmp_path; TUNESMITH_STUDIO_SCREENSHOT=docs/studio.png also refreshes the README's picture."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from synthetic_songs import sounding as _sounding

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MODEL = Path(__file__).resolve().parents[1] / "models" / "erk.pt"

pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (make test installs them as root)"),
    pytest.mark.skipif(not MODEL.is_file(), reason="needs the shipped models/erk.pt"),
]
selenium = pytest.importorskip("selenium", reason="needs selenium (pip install -e '.[web]')")
uvicorn = pytest.importorskip("uvicorn", reason="needs uvicorn (pip install -e '.[web]')")


@pytest.fixture(scope="module")
def server_url():
    from tunesmith.studio.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app({"erk": MODEL}), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.1)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for {what}; page status: {status!r}")


def test_compose_regenerate_play_download(server_url, browser, tmp_path):
    import mido
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    shots = []

    def shot(name):
        path = tmp_path / f"{len(shots) + 1}-{name}.png"
        browser.save_screenshot(str(path))
        shots.append(path)

    browser.get(server_url + "/")
    _wait(browser, "return document.getElementById('status').textContent === 'Ready.'", what="the page")
    Select(browser.find_element(By.ID, "key")).select_by_visible_text("D")
    Select(browser.find_element(By.ID, "meter")).select_by_visible_text("6/8")
    Select(browser.find_element(By.ID, "program")).select_by_visible_text("Fiddle")
    Select(browser.find_element(By.ID, "pickup")).select_by_visible_text("1/4")
    for field, value in (("bars", "8"), ("seed", "7")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    shot("page")

    browser.find_element(By.ID, "compose").click()
    _wait(browser, "return document.querySelectorAll('#score g.measure').length >= 8", what="the score")
    before = browser.execute_script("return state.versions[state.index].melody")
    bars = browser.execute_script("return state.view.bars")
    # a quarter-note upbeat (bar 0), every phrase beginning with it, and a last bar it completes
    assert [b["number"] for b in bars] == list(range(0, 9))
    assert before["song"]["meter"] == "6/8" and before["song"]["key"] == "D" and before["song"]["bar_starts"][0] == 4
    assert all(start % 12 == 0 for start in before["song"]["phrase_starts"])  # 4 steps before each bar line
    number = {b["number"]: b for b in bars}
    shot("composed")

    # Drag from bar 3 to bar 4 on the engraved score.
    third = browser.find_element(By.ID, number[3]["id"]).find_element(By.CSS_SELECTOR, "rect.hit")
    fourth = browser.find_element(By.ID, number[4]["id"]).find_element(By.CSS_SELECTOR, "rect.hit")
    ActionChains(browser).click_and_hold(third).move_to_element(fourth).release().perform()
    assert browser.find_element(By.ID, "selection").text == "Bars 3–4 selected"
    assert browser.execute_script("return document.querySelectorAll('#score rect.selected').length") == 2
    shot("selected")

    browser.find_element(By.ID, "regenerate").click()
    _wait(browser, "return document.querySelectorAll('#alternatives .alt').length === 4", what="alternatives")
    _wait(browser, "return !document.body.classList.contains('working')", what="the preview")
    shot("alternatives")
    browser.find_elements(By.CSS_SELECTOR, "#alternatives .alt-keep")[0].click()
    _wait(browser, "return state.versions.length === 2 && !state.preview", what="the kept alternative")
    after = browser.execute_script("return state.versions[state.index].melody")
    for bar in bars:
        old = _sounding(before["tokens"], bar["start"], bar["end"])
        new = _sounding(after["tokens"], bar["start"], bar["end"])
        if bar["number"] in (3, 4):
            continue
        assert old == new, f"bar {bar['number']} changed"
    assert _sounding(before["tokens"], number[3]["start"], number[4]["end"]) != _sounding(after["tokens"], number[3]["start"], number[4]["end"])
    shot("regenerated")

    browser.find_element(By.ID, "play").click()
    _wait(browser, "const a = document.getElementById('audio'); return a.currentTime > 0.5 && !a.paused", what="playback")
    assert browser.execute_script("return document.querySelectorAll('#score rect.playing').length") == 1
    shot("playing")
    browser.find_element(By.ID, "stop").click()

    Select(browser.find_element(By.ID, "format")).select_by_value("mid")
    browser.find_element(By.ID, "download").click()
    deadline = time.monotonic() + 20
    # Chrome reserves the final name with an empty file, then writes a .crdownload and renames it.
    while time.monotonic() < deadline and (list(browser.downloads.glob("*.crdownload"))
                                           or not any(p.stat().st_size for p in browser.downloads.glob("*.mid"))):
        time.sleep(0.1)
    (midi_path,) = list(browser.downloads.glob("*.mid"))
    onsets = [m.note for m in mido.merge_tracks(mido.MidiFile(midi_path).tracks) if m.type == "note_on" and m.velocity > 0]
    pitches = [int(t) for t in after["tokens"] if t.isdigit()]
    assert onsets == pitches
    shot("downloaded")

    browser.find_element(By.ID, "undo").click()
    _wait(browser, "return state.index === 0", what="undo")
    assert browser.execute_script("return state.versions[state.index].melody.tokens") == before["tokens"]
    assert all(p.stat().st_size > 10_000 for p in shots)
    target = os.environ.get("TUNESMITH_STUDIO_SCREENSHOT")
    if target:
        shutil.copyfile(shots[3], target)


def test_fix_a_note_lock_a_bar_and_play_with_the_in_page_synth(server_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server_url + "/")
    _wait(browser, "return document.getElementById('status').textContent === 'Ready.'", what="the page")
    for field, value in (("bars", "4"), ("seed", "3")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    Select(browser.find_element(By.ID, "pickup")).select_by_visible_text("none")
    Select(browser.find_element(By.ID, "instrument")).select_by_value("whistle")
    browser.find_element(By.ID, "chords").click()  # before composing: the generator harmonises
    browser.find_element(By.ID, "compose").click()
    _wait(browser, "return document.querySelectorAll('#score g.measure').length === 4", what="the score")
    before = browser.execute_script("return state.versions[0].melody")
    pitches = [int(t) for t in before["tokens"] if t.isdigit()]
    assert before["params"]["instrument"] == "whistle" and 62 <= min(pitches) and max(pitches) <= 86
    assert browser.find_element(By.ID, "program").get_attribute("value") == "79"  # the whistle's sound and tempo
    assert browser.find_element(By.ID, "bpm").get_attribute("value") == "104"
    assert before["song"]["chords"] and before["params"]["chords"] is True
    assert len(browser.find_elements(By.CSS_SELECTOR, "#score g.harm")) == len(before["song"]["chords"])
    notes = browser.execute_script("return state.view.notes.filter(n => n.pitch !== null && n.step === n.start)")
    bars = browser.execute_script("return state.view.bars")
    target = next(n for n in notes if bars[1]["start"] <= n["start"] < bars[1]["end"])

    browser.find_element(By.ID, target["id"]).find_element(By.CSS_SELECTOR, ".notehead").click()
    _wait(browser, "return !document.getElementById('note-editor').hidden", what="the note editor")
    browser.find_element(By.CSS_SELECTOR, '#note-editor [data-shift="1"]').click()
    browser.find_element(By.ID, "note-apply").click()
    _wait(browser, "return state.versions.length === 2 && document.querySelectorAll('#score g.note.fixed').length === 1",
          what="the fixed note")  # fmt: skip
    fixed = browser.execute_script("return state.versions[1]")
    assert fixed["melody"]["tokens"][target["start"]] == str(target["pitch"] + 1)
    assert fixed["fixes"] == [{"step": target["start"], "pitch": target["pitch"] + 1}]
    browser.save_screenshot(str(tmp_path / "1-fixed.png"))

    # Lock bar 1, then regenerate bars 1–2: bar 1 and the fixed note stay.
    browser.execute_script("state.selection = [1, 1]; decorate(); updateSelection();")
    browser.find_element(By.ID, "lock").click()
    assert browser.execute_script("return document.querySelectorAll('#score rect.locked').length") == 1
    browser.execute_script("state.selection = [1, 2]; decorate(); updateSelection();")
    browser.find_element(By.ID, "regenerate").click()
    _wait(browser, "return document.querySelectorAll('#alternatives .alt').length === 4", what="alternatives")
    for alt in browser.execute_script("return state.alternatives.map(a => a.melody.tokens)"):
        assert _sounding(alt, 0, bars[0]["end"]) == _sounding(before["tokens"], 0, bars[0]["end"])
        assert alt[target["start"]] == str(target["pitch"] + 1)
    browser.save_screenshot(str(tmp_path / "2-locked-regenerated.png"))

    # Without server audio the page renders the WAV itself.
    browser.execute_script("state.info.formats = state.info.formats.filter(f => f !== 'wav')")
    browser.find_element(By.ID, "play").click()
    _wait(browser, "const a = document.getElementById('audio'); return a.currentTime > 0.3 && !a.paused", what="playback")
    assert "in-page synth" in browser.find_element(By.ID, "status").text
    assert browser.execute_script("return document.querySelectorAll('#score rect.playing').length") == 1
    browser.save_screenshot(str(tmp_path / "3-synth-playing.png"))


def test_open_a_tune_use_it_as_opening_and_read_the_api_page(server_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server_url + "/")
    _wait(browser, "return document.getElementById('status').textContent === 'Ready.'", what="the page")
    tune = Path(__file__).parent / "data" / "two_tunes.abc"
    browser.find_element(By.ID, "open-file").send_keys(str(tune))
    _wait(browser, "return state.versions.length === 1 && state.view !== null", what="the opened tune")
    assert browser.find_element(By.CSS_SELECTOR, "#history li.active").text == "Opened two_tunes.abc"
    assert browser.execute_script("return state.view.title") == "First Tune"
    browser.find_element(By.ID, "use-primer").click()
    assert browser.find_element(By.ID, "primer").get_attribute("value").startswith("60 _ 62 _ 64 _ 65 _ 67")
    browser.save_screenshot(str(tmp_path / "1-opened.png"))
    Select(browser.find_element(By.ID, "chord-span")).select_by_value("bar")
    browser.find_element(By.ID, "chords").click()
    _wait(browser, "return document.querySelectorAll('#score g.harm').length > 0", what="chord symbols")
    assert browser.find_element(By.CSS_SELECTOR, "#history li.active").text == "Chord symbols added (per bar)"
    chords = browser.execute_script("return state.versions[state.index].melody.song.chords")
    bars = browser.execute_script("return state.view.bars")
    assert {c["start"] for c in chords} <= {b["start"] for b in bars}  # one chord per bar, on its downbeat
    assert len(browser.find_elements(By.CSS_SELECTOR, "#score g.harm")) == len(chords)
    browser.save_screenshot(str(tmp_path / "1b-chords.png"))
    browser.find_element(By.ID, "open-file").send_keys(str(Path(__file__).parent / "data" / "meter_change.abc"))
    _wait(browser, "return document.getElementById('status').textContent.includes('changes meter mid-tune')",
          what="the notice that the tune is read in one meter")  # fmt: skip
    assert browser.find_element(By.CSS_SELECTOR, "#history li.active").text == "Opened meter_change.abc"
    browser.save_screenshot(str(tmp_path / "1c-meter-notice.png"))

    browser.get(server_url + "/docs")
    if (Path(__file__).resolve().parents[1] / "src/tunesmith/studio/static/vendor/swagger-ui/swagger-ui-bundle.js").is_file():
        _wait(browser, "return document.querySelectorAll('.opblock').length >= 6", what="Swagger UI")
    else:
        assert "/api/regenerate" in browser.page_source
    browser.save_screenshot(str(tmp_path / "2-api.png"))
