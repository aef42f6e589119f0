"""``codec serve`` over HTTP (no browser): the models endpoint, a coded upload equal to the Tokenizer's own
encode/decode and codec eval's scores, byte ranges, vamping with a masked model, and bad input as one line."""

import io
import json
import socket
import threading
import urllib.error
import urllib.request
import uuid

import pytest
import torch
from tiny_models import save_codec, speechlike, tiny_config

from funcodec_lite.audio.io import load_audio, save_audio
from funcodec_lite.cli import main
from funcodec_lite.codec.loading import load_model, model_id
from funcodec_lite.inference.tokenizer import Tokenizer
from funcodec_lite.jobs.demo import DemoApp, DemoConfig
from funcodec_lite.jobs.demo_server import make_server
from funcodec_lite.lm.masked import MaskedLM, MaskedLMConfig
from funcodec_lite.lm.transformer import TransformerConfig
from funcodec_lite.metrics import Scorer
from funcodec_lite.utils.weights import save_model_dir


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    codec_dir = save_codec(root / "tiny", tiny_config(), seed=1)
    torch.manual_seed(0)
    coarse = MaskedLM(MaskedLMConfig(n_q=2, card=32, transformer=TransformerConfig(
        dim=16, n_layers=1, n_heads=2, causal=False)))
    save_model_dir(root / "masked", coarse, {"tokens": {"model_id": model_id(load_model(codec_dir))},
                                             "codec": str(codec_dir)})
    app = DemoApp([str(codec_dir)], [str(root / "masked")], [], root / "out", DemoConfig(max_seconds=2.0))
    server = make_server(app, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, codec_dir
    server.shutdown()
    server.server_close()


def _post(url: str, fields: dict, file: tuple[str, bytes] | None) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, value in fields.items():
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n".encode())
    if file is not None:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file[0]}"\r\n'
                   "Content-Type: application/octet-stream\r\n\r\n".encode() + file[1] + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(url + "/api/code", body.getvalue(), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _wav_bytes(tmp_path, seconds: float, rate: int = 16000) -> bytes:
    save_audio(tmp_path / "clip.wav", speechlike(seconds, rate, seed=3), rate)
    return (tmp_path / "clip.wav").read_bytes()


def test_models_endpoint(served):
    url, _, _ = served
    with urllib.request.urlopen(url + "/api/models") as response:
        info = json.loads(response.read())
    # 4 codebooks of 32 (5 bits) at 16000 / 16 = 1000 frames per second: 5 kbps per codebook
    assert info["models"][0]["name"] == "tiny"
    assert info["models"][0]["bitrates"] == [{"n_q": n, "kbps": 5.0 * n} for n in range(1, 5)]
    assert info["masked"] == ["masked"] and "beat-driven" in info["presets"]
    with urllib.request.urlopen(url + "/") as response:
        page = response.read().decode()
    assert 'id="file"' in page and "api/code" in page


def test_coded_upload_matches_the_tokenizer(served, tmp_path):
    url, root, codec_dir = served
    status, result = _post(url, {"model": "tiny", "n_q": "2"}, ("clip.wav", _wav_bytes(tmp_path, 0.5)))
    assert status == 200, result
    assert result["kbps"] == 10.0 and result["n_q"] == 2 and result["seconds"] == 0.5
    assert result["vamped"] is None
    job = root / "out" / result["job"]
    wav, _ = load_audio(tmp_path / "clip.wav")
    tokenizer = Tokenizer(load_model(codec_dir), num_codebooks=2)
    expected = tokenizer.decode(tokenizer.encode(wav[None], 16000).codes).wav[0, :, :8000].clamp(-1, 1)
    decoded, rate = load_audio(job / "decoded.wav")
    assert rate == 16000 and decoded.shape == (1, 8000)
    assert torch.allclose(decoded, expected, atol=1 / 32768)  # PCM16 storage
    scores = Scorer("classic").score_pair(wav, expected, 16000)
    assert result["scores"]["mel_distance"] == pytest.approx(scores["mel_distance"], abs=2e-3)
    assert result["scores"]["si_snr"] == pytest.approx(scores["si_snr"], abs=0.05)
    for kind in ("original", "decoded"):
        with urllib.request.urlopen(f"{url}/{result[kind]['image']}") as response:
            assert response.headers["Content-Type"] == "image/png" and response.read()[:4] == b"\x89PNG"
    ranged = urllib.request.Request(f"{url}/{result['decoded']['audio']}", headers={"Range": "bytes=4-11"})
    with urllib.request.urlopen(ranged) as response:
        assert response.status == 206 and response.read() == (job / "decoded.wav").read_bytes()[4:12]
    for bad in ("/files/../../etc/passwd", f"/files/{result['job']}/upload.wav", "/nothing"):
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url + bad)


def test_vamp_with_a_preset(served, tmp_path):
    url, _, _ = served
    status, result = _post(url, {"model": "tiny", "n_q": "4", "vamp": "unconditional", "masked": "masked"},
                           ("clip.wav", _wav_bytes(tmp_path, 0.3, rate=22050)))
    assert status == 200, result
    assert result["vamped"]["generated"] == 1.0 and result["vamped"]["preset"] == "unconditional"
    vamped, rate = load_audio(served[1] / "out" / result["job"] / "vamped.wav")
    assert rate == 22050 and vamped.shape == (1, int(0.3 * 22050))


@pytest.mark.parametrize("case", ["text", "long", "model", "n_q", "preset", "empty"])
def test_bad_input_is_one_line(served, tmp_path, case):
    url, _, _ = served
    fields = {"model": "tiny", "n_q": "4"}
    file = ("clip.wav", _wav_bytes(tmp_path, 0.3))
    if case == "text":
        file = ("notes.txt", b"hello, this is not audio")
    if case == "long":
        file = ("long.wav", _wav_bytes(tmp_path, 2.5))
    if case == "model":
        fields["model"] = "../etc"
    if case == "n_q":
        fields["n_q"] = "7"
    if case == "preset":
        fields["vamp"] = "no-such-preset"
    if case == "empty":
        file = None
    status, result = _post(url, fields, file)
    expected = {"text": "notes.txt: not audio", "long": "2.5 s is too long (at most 2 s)",
                "model": "unknown model", "n_q": "not 7", "preset": "unknown mask preset",
                "empty": "no file"}
    assert status == 400 and expected[case] in result["error"], result
    assert "\n" not in result["error"] and "Traceback" not in result["error"]
    assert str(served[1]) not in result["error"]  # no server paths in the page


def test_serve_command_errors_are_one_line(served, capsys):
    _, root, codec_dir = served
    assert main(["serve", "--no-default", "--model", str(root / "nowhere"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("codec serve: error:") and "nowhere: no such model directory" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--no-default", "--model", str(codec_dir), "--port", str(port),
                     "--out", str(root / "out2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in use" in err, err
