"""The `codec` command line: the demo runs, bad arguments give one line and exit code 2."""

import subprocess
import sys

from funcodec_lite.cli import main


def test_demo_runs(capsys):
    assert main(["demo", "--seconds", "0.5", "--preset", "freqcodec_16k_tiny"]) == 0
    out = capsys.readouterr().out
    assert "codes (1, 32, 26)" in out and "16.00 kbps" in out


def test_presets_lists_sizes(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "encodec_24khz" in out and "14,851,810" in out


def test_bad_argument_is_one_clean_line():
    result = subprocess.run([sys.executable, "-m", "funcodec_lite.cli", "demo", "--seconds", "-1"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--seconds" in result.stderr
    assert "Traceback" not in result.stderr
