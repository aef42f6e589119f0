"""The speech codec recipe runs stage by stage on a tiny synthetic corpus and writes its results table."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from funcodec_lite.utils.weights import read_provenance

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "speech_codec"

TINY = {
    "codec": {"sample_rate": 16000, "arch": "seanet", "domain": "time",
              "model": {"n_filters": 4, "ratios": [8, 5, 4, 2], "dimension": 8, "lstm": 0},
              "quantizer": {"dim": 8, "n_q": 4, "codebook_size": 16, "kmeans_iters": 2}},
    "discriminator": {"kinds": ["msstft"], "msstft": {"filters": 4}},
    "data": {"segment_seconds": 0.5, "batch_size": 2, "valid_utterances": 1, "valid_max_seconds": 2.0},
    "schedule": {"max_steps": 3, "log_every": 1, "valid_every": 3, "checkpoint_every": 2,
                 "valid_n_q": [1, 4]},
}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_recipe_stages_0_to_3(tmp_path):
    recipe = tmp_path / "speech_codec"
    shutil.copytree(RECIPE, recipe, ignore=shutil.ignore_patterns("data", "exp", "wavs"))
    (recipe / "conf" / "test_tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "FUNCODEC_ROOT": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = ["bash", "run.sh", "--config", "conf/test_tiny.yaml", "--num-utts", "16", "--num-voices", "8",
               "--n-q", "1 2 4"]
    result = subprocess.run(command, cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    exp = recipe / "exp" / "test_tiny"
    for split in ("train", "dev", "test"):
        assert (recipe / "data" / split / "wav.scp").exists()
    tokens = sorted((exp / "tokens" / "test").glob("*.npz"))
    test_utts = (recipe / "data" / "test" / "wav.scp").read_text().splitlines()
    assert len(tokens) == len(test_utts) > 0
    table = (exp / "results.md").read_text()
    assert "| 1 | 0.20 |" in table and "| 4 | 0.80 |" in table  # 4 bits x 50 frames/s per codebook
    assert (exp / "log" / "train.log").exists() and (exp / "model" / "model.safetensors").exists()
    # Rerunning a stage picks up where it stopped: training resumes, tokenization redoes stale files only.
    again = subprocess.run(["bash", "run.sh", "--config", "conf/test_tiny.yaml", "--stage", "1",
                            "--stop-stage", "2", "--max-steps", "4"], cwd=recipe, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    # the model trained on, so its tokens are rewritten; a second pass finds them all done
    n = len(test_utts)
    assert "resumed from" in again.stdout and f"{n} written ({n} redone)" in again.stdout
    third = subprocess.run(["bash", "run.sh", "--config", "conf/test_tiny.yaml", "--stage", "2",
                            "--stop-stage", "2"], cwd=recipe, env=env, capture_output=True, text=True,
                           timeout=600)
    assert third.returncode == 0 and f"0 written (0 redone), {len(test_utts)} kept" in third.stdout, \
        third.stderr[-2000:]
    # --init-from: a new run (its own exp dir) fine-tunes the trained model
    (recipe / "conf" / "test_tiny_ft.yaml").write_text(yaml.safe_dump(TINY))
    tuned = subprocess.run(["bash", "run.sh", "--config", "conf/test_tiny_ft.yaml", "--stage", "1",
                            "--stop-stage", "1", "--max-steps", "1", "--init-from", "exp/test_tiny/model"],
                           cwd=recipe, env=env, capture_output=True, text=True, timeout=600)
    assert tuned.returncode == 0, tuned.stdout[-2000:] + tuned.stderr[-2000:]
    provenance = read_provenance(recipe / "exp" / "test_tiny_ft" / "model")
    assert provenance["init_from"] == "exp/test_tiny/model" and provenance["steps"] == 1
