"""egs/vampnet end to end with micro models: tokens, coarse and coarse-to-fine training, the presets table."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from tiny_models import save_codec

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "vampnet"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_recipe_stages_0_to_4(tmp_path):
    recipe = tmp_path / "vampnet"
    shutil.copytree(RECIPE, recipe, ignore=shutil.ignore_patterns("data", "exp", "wavs"))
    codec = save_codec(tmp_path / "codec")  # 4 codebooks of 32
    transformer = {"dim": 16, "n_layers": 1, "n_heads": 2, "causal": False}
    coarse = {"kind": "masked_lm", "transformer": transformer}
    c2f = {"kind": "masked_lm", "n_conditioning": 2, "transformer": transformer}
    for name, model, n_q in (("coarse", coarse, 2), ("c2f", c2f, 4)):
        (recipe / "conf" / f"{name}_micro.yaml").write_text(yaml.safe_dump({
            "model": model, "train": {"steps": 4, "batch_size": 2, "log_every": 2, "checkpoint_every": 4},
            "data": {"n_q": n_q, "segment_frames": 20, "valid_every": 4}}))
    env = {**os.environ, "FUNCODEC_ROOT": str(ROOT), "OMP_NUM_THREADS": "1",
           "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    command = ["bash", "run.sh", "--num-utts", "12", "--num-voices", "3", "--codec", str(codec),
               "--coarse-config", "conf/coarse_micro.yaml", "--c2f-config", "conf/c2f_micro.yaml",
               "--clips", "1", "--steps", "2"]
    done = subprocess.run(command, cwd=recipe, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((recipe / "exp" / "presets" / "results.json").read_text())
    summary = results["summary"]
    for name in ("unconditional", "periodic-5", "periodic-21", "inpaint-1s", "beat-driven", "compress-4"):
        assert (recipe / "exp" / "presets" / f"{name}.png").is_file()
        assert len(list((recipe / "exp" / "presets" / name).glob("*.wav"))) == 1
    assert summary["unconditional"]["kbps"] == 0 and summary["unconditional"]["generated"] == 1.0
    # denser periodic prompts keep more bits, and every kept token comes back exactly
    assert summary["periodic-5"]["kbps"] > summary["periodic-21"]["kbps"] > 0
    assert summary["periodic-5"]["prompt_exact"] == summary["inpaint-1s"]["prompt_exact"] == 1.0
    # the bitrate kept by a compression mask: every 8th frame of all 4 codebooks of the tiny codec is 1/8 of
    # the codec's own rate, up to the rounding of the last partial period
    full_rate = summary["codec n_q=4"]["kbps"]
    assert abs(summary["compress-4"]["kbps"] - full_rate / 8) < 0.2 * full_rate / 8
    assert "codec + vamp" in (recipe / "exp" / "presets" / "results.md").read_text()
