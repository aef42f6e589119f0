"""ONNX export (`funcodec_lite.inference.export`): the exportable operations against PyTorch's, and the
exported encoder / decoder run by onnxruntime against the PyTorch model: identical codes, audio within
1e-4, on a short, an odd and a ~2 s length with batch 2, for a SEANet codec, a FreqCodec preset and the
shipped frame-rate model; `codec export` on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import make_codec, save_codec, tiny_config
from torch import nn
from torch.nn import functional as F

from funcodec_lite import Codec, CodecConfig
from funcodec_lite.cli import main
from funcodec_lite.codec.interface import CompressionModel
from funcodec_lite.codec.loading import load_model
from funcodec_lite.inference.export import ExportError, export_graph, export_onnx, exportable_codec
from funcodec_lite.inference.onnx_ops import ConvOverlapAdd, ConvSTFT, RVQLookup, RVQSearch, reflect_pad
from funcodec_lite.modules.conv import pad1d

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _spread_codebooks(codec: Codec, seconds: float = 2.0) -> Codec:
    """Codebooks drawn from the model's own latents (each layer from what the earlier ones leave), so
    codes are spread over the codebook and near-ties are as rare as in a trained model."""
    generator = torch.Generator().manual_seed(1)
    wav = 0.3 * torch.randn(2, codec.channels, int(seconds * codec.sample_rate), generator=generator)
    with torch.no_grad():
        rows = codec.encode_latent(wav).transpose(1, 2).reshape(-1, codec.quantizer.config.dim)
        for layer in codec.quantizer.layers:
            pick = torch.randint(0, rows.shape[0], (layer.codebook_size,), generator=generator)
            noise = 0.01 * rows.std() * torch.randn(layer.embed.shape, generator=generator)
            layer.embed.copy_(rows[pick] + noise)
            layer.inited.fill_(1.0)
            rows = rows - layer.embed[layer.encode(rows)]
    return codec


def _perturb_weight_norm(codec: Codec) -> None:
    """g != ||v|| and non-zero biases everywhere, so no layer is trivial."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in codec.named_parameters():
            if name.endswith("original0") or name.endswith(".bias"):
                param.add_(0.05 * torch.randn(param.shape, generator=generator))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (PyTorch codec, encoder session, decoder session, manifest), exported once per module."""
    torch.manual_seed(0)
    freq = Codec(CodecConfig.from_yaml("freqcodec_16k_tiny")).eval()
    seanet = make_codec(tiny_config(lstm=1, ratios=(4, 5)))
    for codec in (freq, seanet):
        _perturb_weight_norm(codec)
    models = {"seanet": _spread_codebooks(seanet), "freqcodec": _spread_codebooks(freq),
              "default": load_model("default")}
    out = {}
    for name, codec in models.items():
        directory = tmp_path_factory.mktemp(f"onnx_{name}")
        manifest = export_onnx(codec, directory, verify=False)
        sessions = _session(directory / "encoder.onnx"), _session(directory / "decoder.onnx")
        out[name] = (codec, *sessions, manifest)
    return out


@pytest.mark.parametrize("name", ["seanet", "freqcodec", "default"])
def test_onnxruntime_matches_pytorch(exported, name):
    codec, encoder, decoder, manifest = exported[name]
    spf = codec.samples_per_frame
    assert manifest["n_q"] == codec.n_q and manifest["samples_per_frame"] == spf
    assert manifest["sample_rate"] == codec.sample_rate and len(manifest["codebook_sizes"]) == codec.n_q
    generator = torch.Generator().manual_seed(3)
    used = set()
    for length in (spf + 1, 5 * spf + 77, 2 * codec.sample_rate + 13):  # short, odd, ~2 s
        wav = 0.3 * torch.randn(2, codec.channels, length, generator=generator)
        with torch.no_grad():
            codes = codec.encode(wav)
            audio = codec.decode(codes)
        onnx_codes = encoder.run(None, {"audio": wav.numpy()})[0]
        assert onnx_codes.dtype == np.int64
        np.testing.assert_array_equal(onnx_codes, codes.numpy())
        onnx_audio = decoder.run(None, {"codes": codes.numpy()})[0]
        assert onnx_audio.shape == (2, codec.channels, codes.shape[-1] * spf)
        assert np.abs(onnx_audio - audio.numpy()).max() < 1e-4
        assert np.abs(audio.numpy()).max() > 1e-3  # the decoder says something
        used |= set(codes[:, 0].flatten().tolist())
    assert len(used) > 8  # the codes are not one repeated index
    # fewer codebooks: the decoder takes the first K
    with torch.no_grad():
        few = codec.decode(codes[:, :2])
    assert np.abs(decoder.run(None, {"codes": codes[:, :2].numpy()})[0] - few.numpy()).max() < 1e-4


def test_streaming_step_graphs_match_whole_signal(tmp_path):
    """The causal codec's step graphs, fed chunk by chunk with their state, give the codes and audio of
    the whole signal; the non-causal export has no step graphs."""
    codec = _spread_codebooks(make_codec(tiny_config(causal=True, lstm=2, ratios=(4, 5))))
    _perturb_weight_norm(codec)
    manifest = export_onnx(codec, tmp_path, verify=False)
    stream = manifest["streaming"]
    first, hop = stream["min_first_frames"], codec.samples_per_frame
    assert first == 7  # the last conv's reflect padding (6 samples) at the frame rate
    frames, bounds = first + 15, [0, first, first + 1, first + 5, first + 8, first + 15]
    wav = 0.3 * torch.randn(2, 1, frames * hop, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        codes = codec.encode(wav)
        audio = codec.decode(codes)
    steps = (("encoder_step", wav, hop, codes), ("decoder_step", codes, 1, audio))
    for name, source, scale, expected in steps:
        session = _session(tmp_path / f"{name}.onnx")
        names = [i.name for i in session.get_inputs()]
        assert names == stream[name]["inputs"]
        shapes = [list(shape) for shape in stream[name]["state_shapes_at_batch_1"]]
        for shape, axis in zip(shapes, stream[name]["state_batch_axes"]):
            shape[axis] = 2
        state = [np.zeros(1, np.float32)] + [np.zeros(shape, np.float32) for shape in shapes]
        pieces = []
        for start, end in zip(bounds, bounds[1:]):
            chunk = source[..., start * scale : end * scale].numpy()
            out = session.run(None, dict(zip(names, [chunk, *state])))
            pieces.append(out[0])
            state = out[1:]
        streamed = np.concatenate(pieces, axis=-1)
        if name == "encoder_step":
            np.testing.assert_array_equal(streamed, expected.numpy())
        else:
            assert np.abs(streamed - expected.numpy()).max() < 1e-4
    assert export_onnx(make_codec(tiny_config()), tmp_path, verify=False)["streaming"] is None
    assert not (tmp_path / "encoder_step.onnx").exists()


def test_conv_stft_equals_torch_stft():
    generator = torch.Generator().manual_seed(4)
    x = 0.5 * torch.randn(3, 4001, generator=generator)
    for n_fft, hop, window in ((512, 160, torch.hann_window(512)), (640, 160, torch.hann_window(640)),
                               (64, 16, torch.hamming_window(48))):
        spec = torch.stft(x, n_fft, hop, win_length=window.numel(), window=window, center=False,
                          return_complex=True)
        real, imag = ConvSTFT(n_fft, hop, window)(x)
        torch.testing.assert_close(real, spec.real, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(imag, spec.imag, atol=1e-5, rtol=1e-5)


def test_conv_overlap_add_equals_torch_istft():
    generator = torch.Generator().manual_seed(5)
    n_fft, hop = 512, 160
    window = torch.hann_window(n_fft)
    x = 0.5 * torch.randn(2, 8000, generator=generator)
    spec = torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)
    spec = spec * (1 + 0.3 * torch.randn(spec.shape, generator=generator))  # not a consistent spectrum
    expected = torch.istft(spec, n_fft, hop, window=window, center=True, length=8000)
    wav = ConvOverlapAdd(n_fft, hop, window)(spec.real, spec.imag)[:, n_fft // 2 : n_fft // 2 + 8000]
    torch.testing.assert_close(wav, expected, atol=1e-5, rtol=1e-5)


def test_reflect_pad_equals_pad1d_at_every_length():
    for length in range(1, 14):
        x = torch.randn(2, 3, length)
        for left, right in ((6, 0), (3, 3), (1, 4), (0, 5)):
            torch.testing.assert_close(reflect_pad(x, left, right, right), pad1d(x, left, right, "reflect"),
                                       rtol=0, atol=0)


def test_rvq_search_and_lookup_equal_the_quantizer():
    codec = make_codec(tiny_config())
    codebooks = torch.stack([layer.embed for layer in codec.quantizer.layers])
    latent = codec.encode_latent(0.3 * torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(6)))
    codes = codec.quantizer.encode(latent)
    assert torch.equal(RVQSearch(codebooks)(latent), codes)
    torch.testing.assert_close(RVQLookup(codebooks)(codes[:, :3]), codec.quantizer.decode(codes[:, :3]))


def test_exportable_copy_leaves_the_model_alone():
    codec = make_codec(tiny_config())
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    exportable_codec(codec)
    wav = torch.randn(1, 1, 1000)
    assert codec.encode(wav).shape == (1, 4, 63)  # still weight-normed and working
    assert all(torch.equal(before[k], v) for k, v in codec.state_dict().items())


def test_unexportable_layer_is_named(tmp_path):
    class Spectrum(nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x, dim=-1).abs()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Conv1d(1, 1, 3)
            self.front = Spectrum()

        def forward(self, x):
            return self.front(self.pre(x))

    with pytest.raises(ExportError, match=r"^cannot export layer front \(Spectrum\): .*fft_rfft") as info:
        export_graph(Net(), torch.randn(1, 1, 64), tmp_path / "net.onnx", "audio", "codes", {0: "b"},
                     {0: "b"})
    assert "\n" not in str(info.value)
    assert not (tmp_path / "net.onnx").exists()


class _FrozenPad(CompressionModel):
    """A codec kind whose encoder pads by a Python int computed from the length: a traced graph freezes it."""

    model_kind, config_class, config = "frozen_pad_test", dict, {}
    sample_rate, channels, samples_per_frame, n_q, codebook_sizes = 8000, 1, 8, 1, (4,)

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv1d(1, 4, 8, stride=8)

    def encode(self, wav, n_q=None):
        pad = int((-wav.shape[-1]) % 8)
        return self.proj(F.pad(wav, (0, pad))).argmax(1, keepdim=True)

    def decode(self, codes, length=None):
        return codes.float().repeat_interleave(8, dim=-1)


def test_other_kinds_export_through_encode_and_frozen_lengths_are_refused(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(ExportError, match=r"^the exported graphs give shapes .* length is fixed in the"):
        export_onnx(_FrozenPad().eval(), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written


def test_cli_export_writes_and_refuses(tmp_path, capsys):
    model = save_codec(tmp_path / "model")
    out = tmp_path / "onnx"
    assert main(["export", str(model), str(out), "--format", "onnx"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["opset"] == 17 and manifest["n_q"] == 4 and manifest["frame_rate"] == 1000.0
    assert manifest["verified"]["codes_equal"] == 1.0 and manifest["verified"]["audio_max_abs_diff"] < 1e-4
    assert len(manifest["model_id"]) == 16
    assert (out / "encoder.onnx").stat().st_size > 1000 and (out / "decoder.onnx").stat().st_size > 1000
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx", "manifest.json"]
    capsys.readouterr()
    stamp = (out / "encoder.onnx").stat().st_mtime_ns
    assert main(["export", str(model), str(out)]) == 2  # existing output without --force
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and (out / "encoder.onnx").stat().st_mtime_ns == stamp
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such model directory" in err and not (tmp_path / "o2").exists()
    assert main(["export", str(model), str(out), "--force", "--no-verify", "--n-q", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verified"] is None and manifest["encoder_n_q"] == 2 and manifest["n_q"] == 4
    codec = load_model(model)
    wav = 0.3 * torch.randn(1, 1, 999, generator=torch.Generator().manual_seed(7))
    codes = _session(out / "encoder.onnx").run(None, {"audio": wav.numpy()})[0]
    np.testing.assert_array_equal(codes, codec.encode(wav, 2).numpy())
    assert main(["export", str(model), str(out), "--force", "--n-q", "5"]) == 2
    assert "--n-q must be in 1..4" in capsys.readouterr().err
