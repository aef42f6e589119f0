"""Our HTML pages in a real browser: Debian's headless Chromium driven by selenium (no download at run time).

* the Foley ``report.html``: every audio element loads, every image renders;
* the MUSHRA page of ``codec listen``: play, switch in sync, rate, export JSON and CSV, aggregate them;
* the ``codec serve`` page: upload a clip, the decoded audio plays, the bit rate and the scores show.

``FUNCODEC_LITE_SCREENSHOTS=1`` also saves the MUSHRA and demo pages to ``docs/img/`` (the docs' figures).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_models import save_codec, speechlike, tiny_config

from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(f"Chromium and its driver are not installed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install "
                "chromium chromium-driver (setup.sh --test does)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install "
                                "'funcodec_lite[test]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
SCREENSHOTS = os.environ.get("FUNCODEC_LITE_SCREENSHOTS") == "1"
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1100,900"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "profile.default_content_setting_values.automatic_downloads": 1})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 20.0, what: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def _screenshot(driver, name: str) -> None:
    if not SCREENSHOTS:
        return
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1100, min(max(int(height) + 200, 600), 2000))
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(DOCS_IMG / name))
    driver.set_window_size(1100, 900)


MEDIA_STATE = """
return [...document.querySelectorAll(arguments[0])].map(a => ({src: a.currentSrc || a.src,
  ready: a.readyState, duration: a.duration, error: a.error ? a.error.code : null}));
"""


# ----------------------------------------------------------------------------------------------------------
def _foley_report(root: Path) -> Path:
    """A report.html from the recipe's own writer, on two classes of short synthetic clips."""
    from funcodec_lite.audio.mel_frontend import recipe_front_end
    from funcodec_lite.foley.data import output_folder
    from funcodec_lite.recipes.dcase_foley.report import plot_class, plot_scores, write_report_html

    mel = recipe_front_end()
    rate = mel.config.sample_rate
    names = ["DogBark", "Rain"]
    examples = {}
    for c, name in enumerate(names):
        paths = {}
        for kind in ("real", "generated"):
            paths[kind] = []
            for k in range(2):
                rel = f"{'report/real' if kind == 'real' else 'generated'}/{output_folder(name)}/{k}.wav"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                seed = 10 * c + k + 5 * (kind == "generated")
                save_audio(root / rel, speechlike(0.4, rate, seed=seed), rate)
                paths[kind].append(rel)
        mels = {kind: mel(torch.stack([load_audio(root / p)[0][0] for p in paths[kind]])) for kind in paths}
        plot_class(root / "plots" / f"{output_folder(name)}.png", name, mels["real"], mels["generated"], mel)
        examples[name] = paths
    report = {"fad": {"DogBark": 3.2, "Rain": 5.1}, "matched_is_nearest": {"DogBark": True, "Rain": False},
              "classifier_accuracy_generated": {"DogBark": 0.5, "Rain": 0.25},
              "classifier_accuracy_reconstructed": {"DogBark": 0.75, "Rain": 1.0},
              "embedding": "test embedding", "reference": "eval", "classes_matched": 1,
              "classifier_accuracy_generated_mean": 0.375, "fad_average": 4.15}
    levels = {"lufs_median": -24.0, "lufs_p25": -26.0, "lufs_p75": -22.0, "peak_db_median": -5.0,
              "peak_db_p25": -6.0, "peak_db_p75": -4.0}
    report["waveform_judge"] = {
        "accuracy_real_heldout": 0.99, "accuracy_generated": {"DogBark": 0.25, "Rain": 1.0},
        "accuracy_generated_mean": 0.625,
        "heard_as": {"DogBark": {"Rain": 3, "DogBark": 1}, "Rain": {"Rain": 4}},
        "fad": {"DogBark": 7.5, "Rain": 2.5}, "fad_average": 5.0, "classes_matched": 1,
        "levels": {n: {"real": levels, "generated": levels} for n in names}}
    plot_scores(root / "plots" / "scores.png", report, names, "synthetic run")
    write_report_html(root / "report.html", "synthetic run", report, names, examples)
    return root / "report.html"


def test_foley_report_loads_every_clip_and_image(browser, tmp_path):
    from funcodec_lite.foley.data import output_folder

    page = _foley_report(tmp_path)
    browser.get(page.as_uri())
    # the page asks for no preload (many clips): load each clip's metadata as a listener's click would
    browser.execute_script("document.querySelectorAll('audio').forEach(a => {a.preload = 'metadata'; "
                           "a.load();})")
    states = _wait(browser, lambda d: (s := d.execute_script(MEDIA_STATE, "audio")) and all(
        x["ready"] >= 1 or x["error"] for x in s) and s, what="audio metadata")
    assert len(states) == 8
    for state in states:
        assert state["error"] is None and state["ready"] >= 1, state
        assert state["duration"] == pytest.approx(0.4, abs=0.01), state
    images = browser.execute_script("return [...document.images].map(i => [i.getAttribute('src'), "
                                    "i.complete, i.naturalWidth, i.naturalHeight])")
    folders = [output_folder(name) for name in ("DogBark", "Rain")]
    assert sorted(i[0] for i in images) == sorted([f"plots/{f}.png" for f in folders] + ["plots/scores.png"])
    for src, complete, width, height in images:
        assert complete and width > 0 and height > 0, src
    text = browser.find_element("tag name", "body").text
    assert "waveform judge accuracy 0.25 (heard as Rain 3, DogBark 1)" in text
    assert "waveform judge accuracy 1.00 (heard as Rain 4)" in text


# ----------------------------------------------------------------------------------------------------------
def _listening_test(root: Path) -> Path:
    for name in ("ref", "codec_a", "codec_b"):
        (root / name).mkdir()
    for i in range(3):
        wav = speechlike(1.0, 16000, seed=i)
        save_audio(root / "ref" / f"u{i}.wav", wav, 16000)
        save_audio(root / "codec_a" / f"u{i}.wav", wav + 0.05 * torch.randn(wav.shape), 16000)
        save_audio(root / "codec_b" / f"u{i}.wav", wav * 0.5, 16000)
    assert main(["listen", "--ref", str(root / "ref"), "--cond", f"codec_a={root / 'codec_a'}", "--cond",
                 f"codec_b={root / 'codec_b'}", "--out", str(root / "test"),
                 "--title", "Codec listening test"]) == 0
    return root / "test" / "index.html"


def _downloaded(folder: Path, suffix: str) -> Path:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [p for p in folder.glob(f"mushra_*{suffix}") if p.stat().st_size > 0]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {suffix} download in {folder}: {sorted(p.name for p in folder.iterdir())}")


def test_mushra_page_plays_rates_and_exports(browser, tmp_path, downloads):
    page = _listening_test(tmp_path)
    browser.get(page.as_uri())
    config = browser.execute_script("return CONFIG")
    assert len(config["trials"]) == 3
    timing = ("return Object.fromEntries(Object.entries(audios).map(([k, a]) => "
              "[k, [a.currentTime, a.paused]]))")
    browser.find_element(By.ID, "play-A").click()
    _wait(browser, lambda d: d.execute_script(timing)["A"][0] > 0.25, what="A plays")
    browser.find_element(By.ID, "play-B").click()
    state = browser.execute_script(timing)
    assert state["A"][1] and not state["B"][1]  # A paused, B playing ...
    assert state["B"][0] >= 0.25  # ... from where A was, not from the start
    browser.find_element(By.ID, "listener").send_keys("ann")
    wanted = {"reference": 100, "anchor_3k5": 5, "codec_a": 60, "codec_b": 30}  # arrow presses from 0
    for index, trial in enumerate(config["trials"]):
        for stimulus in trial["stimuli"]:
            slider = browser.find_element(By.ID, f"rate-{stimulus['label']}")
            value = wanted[stimulus["key"]] + index  # each trial a little different
            slider.send_keys(Keys.END if value >= 100 else Keys.ARROW_RIGHT * value)
        if index == 1:
            _screenshot(browser, "mushra.png")
        if index < 2:
            browser.find_element(By.ID, "next").click()
    browser.find_element(By.ID, "export-json").click()
    assert "exported 12 ratings" in browser.find_element(By.ID, "status").text
    exported = json.loads(_downloaded(downloads, ".json").read_text())
    assert exported == browser.execute_script("return window.mushraResults")
    browser.find_element(By.ID, "export-csv").click()
    assert exported["test"] == config["id"] and exported["listener"] == "ann"
    ratings = {(r["trial"], r["condition"]): r["rating"] for r in exported["ratings"]}
    assert ratings == {(t["name"], key): min(100, value + i) for i, t in enumerate(config["trials"])
                       for key, value in wanted.items()}
    csv_file = _downloaded(downloads, ".csv")
    assert main(["listen", "--results", str(csv_file), "--out", str(tmp_path / "summary")]) == 0
    summary = json.loads((tmp_path / "summary" / "summary.json").read_text())
    assert summary["listeners"] == ["ann"] and summary["excluded"] == {}
    means = {s["condition"]: s["mean"] for s in summary["scores"]}
    assert means == {"reference": 100, "anchor_3k5": 6, "codec_a": 61, "codec_b": 31}


# ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def demo_server(tmp_path):
    codec_dir = save_codec(tmp_path / "tiny", tiny_config(), seed=1)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "funcodec_lite.cli", "serve", "--model", str(codec_dir),
                                "--port", "0", "--out", str(tmp_path / "out"), "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, f"codec serve did not start: {line}{process.stdout.read() if process.poll() else ''}"
        yield match.group(0), tmp_path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_demo_page_codes_an_upload(browser, demo_server):
    url, root = demo_server
    clip = root / "speech.wav"
    wav, rate = load_audio(DATA / "librivox_0880.flac")
    save_audio(clip, wav[:, : 2 * rate], rate)
    browser.get(url)
    _wait(browser, lambda d: d.find_element(By.ID, "ready").get_attribute("data-ready") == "1", what="models")
    models = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#model option")]
    assert models == ["default", "tiny"]
    browser.find_element(By.CSS_SELECTOR, "#n_q option[value='8']").click()  # the default model at 4 kbps
    browser.find_element(By.ID, "file").send_keys(str(clip))
    browser.find_element(By.ID, "run").click()
    _wait(browser, lambda d: d.execute_script(MEDIA_STATE, "#audio-decoded")
          and d.execute_script(MEDIA_STATE, "#audio-decoded")[0]["ready"] >= 2, timeout=40,
          what="decoded audio")
    decoded = browser.execute_script(MEDIA_STATE, "#audio-decoded")[0]
    assert decoded["error"] is None and decoded["duration"] == pytest.approx(2.0, abs=0.01)
    assert browser.find_element(By.ID, "bitrate").text == "4 kbps (8 codebooks, default)"
    browser.execute_script("document.getElementById('audio-decoded').play()")
    _wait(browser, lambda d: d.execute_script("return document.getElementById('audio-decoded').currentTime")
          > 0.1, what="decoded audio plays")
    for image in browser.find_elements(By.CSS_SELECTOR, "#columns img"):
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
    scores = browser.find_element(By.ID, "scores").text
    assert "PESQ (wb)" in scores and "STOI" in scores
    _screenshot(browser, "demo.png")
    # bad input: a text file gets one readable line in the page
    (root / "notes.txt").write_text("not audio")
    browser.find_element(By.ID, "file").send_keys(str(root / "notes.txt"))
    browser.find_element(By.ID, "run").click()
    _wait(browser, lambda d: d.find_element(By.ID, "message").get_attribute("class") == "error", what="error")
    text = browser.find_element(By.ID, "message").text
    assert text.startswith("notes.txt: not audio") and "Traceback" not in text and str(root) not in text
