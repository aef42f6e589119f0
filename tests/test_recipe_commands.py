"""The stage commands of the speech, TTS and VampNet recipes (``python -m funcodec_lite.recipes.<name>``):
the shared token stage resumes and redoes as the tokenization job does, and user errors are one line and
exit status 2. The recipes end to end: test_speech_recipe.py, test_lm_sequence.py, test_vampnet_recipe.py."""

import pytest
from tiny_models import save_codec, speechlike

from funcodec_lite.audio.io import save_audio
from funcodec_lite.recipes.speech_codec.command import main as speech_main
from funcodec_lite.recipes.tts_lm.command import main as tts_main
from funcodec_lite.recipes.vampnet.command import main as vampnet_main


def _data_dir(root, utts=("a-0", "a-1")):
    root.mkdir(parents=True)
    lines = []
    for index, utt in enumerate(utts):
        path = root / f"{utt}.wav"
        save_audio(path, speechlike(0.25, 16000, seed=index), 16000)
        lines.append(f"{utt} {path}")
    (root / "wav.scp").write_text("\n".join(lines) + "\n")
    return root


def test_token_stage_writes_then_keeps_then_redoes(tmp_path, capsys):
    data = _data_dir(tmp_path / "data" / "test")
    first, second = save_codec(tmp_path / "m1"), save_codec(tmp_path / "m2", seed=1)
    out = tmp_path / "tokens" / "test"
    args = ["tokenize", "--data", str(data), "--out", str(out), "--n-q", "2"]
    assert speech_main(args[:1] + ["--model", str(first)] + args[1:]) == 0
    assert "2 written (0 redone), 0 kept, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.npz")) == ["a-0.npz", "a-1.npz"]
    assert speech_main(args[:1] + ["--model", str(first)] + args[1:]) == 0
    assert "0 written (0 redone), 2 kept" in capsys.readouterr().out
    # another model's token files are redone; the TTS recipe's stage writes OUT/<split>/ with the same job
    assert tts_main(["tokenize", "--codec", str(second), "--data", str(data), "--out", str(out.parent),
                     "--n-q", "2"]) == 0
    assert "2 written (2 redone), 0 kept" in capsys.readouterr().out


@pytest.mark.parametrize("main, argv, message", [
    (speech_main, ["tokenize", "--model", "{tmp}/missing", "--data", "{tmp}", "--out", "{tmp}/t"],
     "tokenize: error: "),
    (tts_main, ["tokenize", "--codec", "{codec}", "--data", "{tmp}", "--out", "{tmp}/t", "--n-q", "9"],
     "tokenize: error: --n-q must be in 1..4, got 9"),
    (tts_main, ["synthesize", "--ar", "{tmp}/missing", "--examples", "{tmp}/x.npz", "--out", "{tmp}/s"],
     "synthesize: error: "),
    (vampnet_main, ["presets", "--coarse", "{codec}", "--c2f", "{codec}", "--data", "{tmp}", "--out",
                    "{tmp}/p"], "presets: error: {codec}: a codec model directory, not a masked token model"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, main, argv, message):
    codec = save_codec(tmp_path / "codec")
    assert main([a.format(tmp=tmp_path, codec=codec) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.format(codec=codec)) and err.count("\n") == 1, err
    assert not list(tmp_path.glob("t/*.npz"))  # --n-q is checked before any audio is read
