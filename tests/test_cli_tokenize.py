"""`codec tokenize`: every utterance accounted for, resumable, sharded, and runnable under accelerate."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from tiny_models import save_codec, speechlike, tiny_config

from funcodec_lite.cli import main
from funcodec_lite.codec.loading import load_model, model_id
from funcodec_lite.inference.filecoding import encode_file
from funcodec_lite.inference.tokens import load_tokens


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    model = save_codec(root / "model", tiny_config())
    lines = []
    for i in range(6):
        rate = (16000, 22050, 8000)[i % 3]
        path = root / "wav" / f"u{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, speechlike(0.2 + 0.05 * i, rate, channels=1 + i % 2, seed=i).T.numpy(), rate)
        lines.append(f"utt{i} {path}")
    bad = root / "wav" / "bad.wav"
    sf.write(bad, np.full(800, np.nan, np.float32), 16000, subtype="FLOAT")
    lines += [f"uttbad {bad}", f"uttgone {root / 'wav' / 'gone.wav'}"]
    scp = root / "wav.scp"
    scp.write_text("\n".join(reversed(lines)) + "\n")  # unsorted on purpose
    return root, model, scp


def _log(path):
    return {line.split("\t")[0]: line.split("\t")[1] for line in path.read_text().splitlines()
            if not line.startswith("#")}


def test_every_input_is_accounted_for_and_reruns_resume(corpus, tmp_path, capsys):
    root, model, scp = corpus
    out = tmp_path / "tokens"
    argv = ["tokenize", "--scp", str(scp), "--out-dir", str(out), "--model", str(model), "-q"]
    assert main(argv) == 2
    stdout, stderr = capsys.readouterr()
    assert "6 ok, 0 skipped, 2 failed" in stdout
    assert "uttbad: " in stderr and "NaN" in stderr and "uttgone: " in stderr and "no such file" in stderr
    log = _log(out / "log" / "tokenize.log")
    assert log == {**{f"utt{i}": "ok" for i in range(6)}, "uttbad": "failed", "uttgone": "failed"}
    assert sorted(p.name for p in out.glob("*.npz")) == [f"utt{i}.npz" for i in range(6)]
    # the tokens are those of `codec encode`
    codec = load_model(model)
    direct = encode_file(codec, root / "wav" / "u3.wav", None)
    assert np.array_equal(load_tokens(out / "utt3.npz").codes, direct.codes)
    # a rerun skips what is done and retries what failed
    sf.write(root / "wav" / "gone.wav", speechlike(0.1, 16000).T.numpy(), 16000)
    try:
        assert main(argv) == 2
        assert "1 ok, 6 skipped, 1 failed" in capsys.readouterr()[0]
        log = _log(out / "log" / "tokenize.log")
        assert log["utt0"] == "skipped" and log["uttgone"] == "ok" and log["uttbad"] == "failed"
    finally:
        (root / "wav" / "gone.wav").unlink()


def test_shards_split_the_work_and_workers_give_the_same_tokens(corpus, tmp_path, capsys):
    _, model, scp = corpus
    out = tmp_path / "tokens"
    for shard in ("0/3", "1/3", "2/3"):
        main(["tokenize", "--scp", str(scp), "--out-dir", str(out), "--model", str(model), "--shard", shard,
              "-q"])
    capsys.readouterr()
    logs = [_log(out / "log" / f"tokenize.{r}-of-3.log") for r in range(3)]
    assert [sorted(log) for log in logs] == [["utt0", "utt3", "uttbad"], ["utt1", "utt4", "uttgone"],
                                             ["utt2", "utt5"]]
    alone = tmp_path / "workers"
    assert main(["tokenize", "--scp", str(scp), "--out-dir", str(alone), "--model", str(model),
                 "--num-workers", "2", "-q"]) == 2
    for i in range(6):
        name = f"utt{i}.npz"
        assert np.array_equal(load_tokens(out / name).codes, load_tokens(alone / name).codes)


def test_tokens_of_another_model_are_redone_and_logged(corpus, tmp_path, capsys):
    root, model, scp = corpus
    other = save_codec(tmp_path / "other", tiny_config(), seed=5)
    out, fresh = tmp_path / "tokens", tmp_path / "fresh"
    main(["tokenize", "--scp", str(scp), "--out-dir", str(out), "--model", str(other), "-q"])
    capsys.readouterr()
    assert main(["tokenize", "--scp", str(scp), "--out-dir", str(out), "--model", str(model), "-q"]) == 2
    stdout, _ = capsys.readouterr()
    assert "6 ok, 0 skipped, 2 failed" in stdout and "6 redone" in stdout  # the bad files fail again
    log = (out / "log" / "tokenize.log").read_text()
    assert log.count("\tredo\t") == 6 and "was made by model" in log
    main(["tokenize", "--scp", str(scp), "--out-dir", str(fresh), "--model", str(model), "-q"])
    ours = load_model(model)
    for i in range(6):
        redone = load_tokens(out / f"utt{i}.npz")
        assert redone.model_id == model_id(ours)
        assert np.array_equal(redone.codes, load_tokens(fresh / f"utt{i}.npz").codes)


def test_bad_scp_fails_cleanly(tmp_path, capsys, corpus):
    _, model, _ = corpus
    scp = tmp_path / "wav.scp"
    scp.write_text("a x.wav\na y.wav\nb\n")
    assert main(["tokenize", "--scp", str(scp), "--out-dir", str(tmp_path / "o"), "--model", str(model)]) == 2
    err = capsys.readouterr()[1]
    assert err.count("\n") == 1 and "duplicate id 'a'" in err and "wav.scp:3" in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_accelerate_launch_runs_one_shard_per_process(corpus, tmp_path):
    _, model, scp = corpus
    out = tmp_path / "tokens"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", "-m", "funcodec_lite.cli", "tokenize", "--scp", str(scp),
               "--out-dir", str(out), "--model", str(model), "--device", "cpu", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=280,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0  # two utterances fail (exit code 2 in their rank)
    assert "shard 0/2: 3 ok, 0 skipped, 1 failed" in result.stdout
    assert "shard 1/2: 3 ok, 0 skipped, 1 failed" in result.stdout
    assert sorted(p.name for p in out.glob("*.npz")) == [f"utt{i}.npz" for i in range(6)]
    assert sorted(p.name for p in (out / "log").iterdir()) == ["tokenize.0-of-2.log", "tokenize.1-of-2.log"]
