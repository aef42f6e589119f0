"""`codec convert`: EnCodec checkpoints give EnCodec's codes; FunCodec checkpoints compute what FunCodec does.

FunCodec is not installed here, so the FunCodec tests build checkpoints with its public key layout: the
module tree below writes down the names of FunCodec's SEANet (``SConv1d.conv.conv`` under old-style
weight norm, ``SConvTranspose1d.convtr.convtr``, ``SEANetResnetBlock.block/shortcut``, ``SLSTM.lstm``)
and of its distributed RVQ (``quantizer.rq.model.{embed, embed_avg, cluster_size, inited}`` stacked
over layers), with random weights. The converted codec is then checked against an independent statement
of FunCodec's forward pass (``funcodec/models/{encoder/seanet_encoder,decoder/seanet_decoder}.py`` and
``funcodec/modules/normed_modules/{conv,lstm}.py``) that reads the raw checkpoint tensors by their
FunCodec names and shares no code with funcodec_lite, so a tensor that lands in the wrong place, or a
padding, norm or skip that differs from FunCodec's, changes the numbers.
"""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from reference_libs import import_reference
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import weight_norm

from funcodec_lite.cli import main
from funcodec_lite.codec.model import Codec
from funcodec_lite.convert.funcodec import funcodec_to_codec
from funcodec_lite.inference.tokens import load_tokens


# ------------------------------------------------------------------------------------------------
# FunCodec's module names, restated (shapes only; these modules are never run)
class NormConv(nn.Module):
    def __init__(self, conv: nn.Module, attr: str, norm: str):
        super().__init__()
        setattr(self, attr, weight_norm(conv) if norm == "weight_norm" else conv)
        self.norm = nn.GroupNorm(1, conv.out_channels) if norm == "time_group_norm" else nn.Identity()


class SConv1d(nn.Module):
    def __init__(self, cin, cout, k, stride=1, dilation=1, norm="weight_norm"):
        super().__init__()
        self.conv = NormConv(nn.Conv1d(cin, cout, k, stride, dilation=dilation), "conv", norm)


class SConvTranspose1d(nn.Module):
    def __init__(self, cin, cout, k, stride, norm):
        super().__init__()
        self.convtr = NormConv(nn.ConvTranspose1d(cin, cout, k, stride), "convtr", norm)


class ResBlock(nn.Module):
    def __init__(self, dim, dilation, norm):
        super().__init__()
        self.block = nn.Sequential(nn.ELU(), SConv1d(dim, dim // 2, 3, dilation=dilation, norm=norm),
                                   nn.ELU(), SConv1d(dim // 2, dim, 1, norm=norm))
        self.shortcut = SConv1d(dim, dim, 1, norm=norm)


class SLSTM(nn.Module):
    def __init__(self, dim, layers):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)


def funcodec_generator(conf: dict) -> nn.Module:
    """encoder.model / quantizer.rq.model / decoder.model as FunCodec's ``Encodec`` model holds them."""
    f, ratios, dim, norm = conf["n_filters"], conf["ratios"], conf["dimension"], conf["norm"]
    res, lstm = conf["n_residual_layers"], conf["seq_layer_num"] if conf["seq_model"] == "lstm" else 0
    enc, width = [SConv1d(1, f, 7, norm=norm)], f
    for ratio in reversed(ratios):
        enc += [ResBlock(width, 2**j, norm) for j in range(res)]
        enc += [nn.ELU(), SConv1d(width, width * 2, 2 * ratio, ratio, norm=norm)]
        width *= 2
    enc += ([SLSTM(width, lstm)] if lstm else []) + [nn.ELU(), SConv1d(width, dim, 7, norm=norm)]
    dec = [SConv1d(dim, width, 7, norm=norm)] + ([SLSTM(width, lstm)] if lstm else [])
    for ratio in ratios:
        dec += [nn.ELU(), SConvTranspose1d(width, width // 2, 2 * ratio, ratio, norm)]
        width //= 2
        dec += [ResBlock(width, 2**j, norm) for j in range(res)]
    dec += [nn.ELU(), SConv1d(width, 1, 7, norm=norm)]
    model = nn.Module()
    model.encoder, model.decoder = nn.Module(), nn.Module()
    model.encoder.model, model.decoder.model = nn.Sequential(*enc), nn.Sequential(*dec)
    return model


def funcodec_checkpoint(conf: dict, n_q: int = 4, bins: int = 16, ddp: bool = True, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    state = funcodec_generator(conf).state_dict()
    with torch.no_grad():
        for value in state.values():
            value.add_(0.05 * torch.randn_like(value))  # not the default init: every tensor distinct
    dim = conf["dimension"]
    embed = torch.randn(n_q, bins, dim) * torch.logspace(0, -1, n_q)[:, None, None]
    cluster_size = torch.rand(n_q, bins) + 1
    buffers = {"embed": embed, "embed_avg": embed * cluster_size[..., None], "cluster_size": cluster_size,
               "inited": torch.ones(n_q, 1)}
    if ddp:
        state.update({f"quantizer.rq.model.{k}": v for k, v in buffers.items()})
    else:
        for i in range(n_q):
            state.update({f"quantizer.rq.model.layers.{i}._codebook.{k}": v[i] for k, v in buffers.items()})
    state["discriminator.discriminators.0.convs.0.weight"] = torch.zeros(3)  # ignored: not the codec
    state["mel_spec_transforms.0.mel_basis"] = torch.zeros(4, 5)
    return state


def funcodec_yaml(conf: dict, n_q: int = 4, bins: int = 16) -> dict:
    enc_keys = ("n_filters", "ratios", "dimension", "n_residual_layers", "norm", "causal", "seq_model",
                "seq_layer_num")
    section = {k: conf[k] for k in enc_keys}
    decoder = {k: v for k, v in section.items() if k != "dimension"} | {"input_size": conf["dimension"]}
    return {"input_size": 1, "sampling_rate": 16000, "encoder": "encodec_seanet_encoder",
            "encoder_conf": section, "decoder": "encodec_seanet_decoder", "decoder_conf": decoder,
            "quantizer": "costume_quantizer",
            "quantizer_conf": {"codebook_size": bins, "num_quantizers": n_q, "ema_decay": 0.99,
                               "kmeans_init": True, "quantize_dropout": True, "rand_num_quant": [1, 2, 4],
                               "use_ddp": True},
            "model": "encodec", "model_conf": {"odim": conf["dimension"], "audio_normalize": True,
                                               "target_sample_hz": 16000},
            "discriminator": "multiple_disc", "optim": "adam", "optim_conf": {"lr": 0.0003}}


# ------------------------------------------------------------------------------------------------
# FunCodec's forward pass, stated directly on the raw checkpoint tensors (ELU alpha 1, reflect padding)
def _fc_weight(state: dict, prefix: str) -> torch.Tensor:
    """A conv weight; old-style weight norm (dim 0) is g * v / |v| with the norm over all but dim 0."""
    if f"{prefix}.weight_g" in state:
        g, v = state[f"{prefix}.weight_g"], state[f"{prefix}.weight_v"]
        return g * v / v.flatten(1).norm(dim=1).reshape(-1, *[1] * (v.dim() - 1))
    return state[f"{prefix}.weight"]


def _fc_norm(state: dict, prefix: str, y: torch.Tensor, conf: dict) -> torch.Tensor:
    if conf["norm"] != "time_group_norm":
        return y
    return F.group_norm(y, 1, state[f"{prefix}.norm.weight"], state[f"{prefix}.norm.bias"], eps=1e-5)


def _fc_conv(state: dict, name: str, x: torch.Tensor, conf: dict, stride: int = 1,
             dilation: int = 1) -> torch.Tensor:
    """SConv1d: pad (k - 1) d - (s - 1) (all left when causal, else the larger half left) plus the
    extra right padding that makes the last window full, then the conv and its norm."""
    weight, bias = _fc_weight(state, f"{name}.conv.conv"), state[f"{name}.conv.conv.bias"]
    k, length = weight.shape[-1], x.shape[-1]
    total = (k - 1) * dilation - (stride - 1)
    extra = (math.ceil((length - k + total) / stride + 1) - 1) * stride + (k - total) - length
    left = total if conf["causal"] else total - total // 2
    x = F.pad(x, (left, total - left + extra), mode="reflect")
    return _fc_norm(state, f"{name}.conv", F.conv1d(x, weight, bias, stride, dilation=dilation), conf)


def _fc_conv_transpose(state: dict, name: str, x: torch.Tensor, conf: dict, stride: int) -> torch.Tensor:
    """SConvTranspose1d: transposed conv and norm, then k - s samples trimmed (all right when causal)."""
    weight, bias = _fc_weight(state, f"{name}.convtr.convtr"), state[f"{name}.convtr.convtr.bias"]
    y = _fc_norm(state, f"{name}.convtr", F.conv_transpose1d(x, weight, bias, stride), conf)
    total = weight.shape[-1] - stride
    right = total if conf["causal"] else total // 2
    return y[..., total - right : y.shape[-1] - right]


def _fc_resblock(state: dict, name: str, x: torch.Tensor, conf: dict, dilation: int) -> torch.Tensor:
    y = _fc_conv(state, f"{name}.block.1", F.elu(x), conf, dilation=dilation)
    y = _fc_conv(state, f"{name}.block.3", F.elu(y), conf)
    return _fc_conv(state, f"{name}.shortcut", x, conf) + y


def _fc_lstm(state: dict, name: str, x: torch.Tensor, layers: int) -> torch.Tensor:
    """SLSTM: unidirectional LSTM over time (gates i, f, g, o), plus the input (res_seq)."""
    sequence = x.permute(2, 0, 1)  # [T, B, C]
    out = sequence
    for layer in range(layers):
        w_ih, w_hh = state[f"{name}.lstm.weight_ih_l{layer}"], state[f"{name}.lstm.weight_hh_l{layer}"]
        bias = state[f"{name}.lstm.bias_ih_l{layer}"] + state[f"{name}.lstm.bias_hh_l{layer}"]
        h = c = torch.zeros_like(out[0])
        steps = []
        for frame in out:
            i, f, g, o = (frame @ w_ih.T + h @ w_hh.T + bias).chunk(4, dim=-1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
            steps.append(h)
        out = torch.stack(steps)
    return (out + sequence).permute(1, 2, 0)


def funcodec_encode_latent(state: dict, conf: dict, wav: torch.Tensor) -> torch.Tensor:
    """SEANetEncoder.model on [B, 1, T]: latent [B, D, N] (before FunCodec's permute to [B, N, D])."""
    x, i = _fc_conv(state, "encoder.model.0", wav, conf), 1
    for ratio in reversed(conf["ratios"]):
        for j in range(conf["n_residual_layers"]):
            x, i = _fc_resblock(state, f"encoder.model.{i}", x, conf, 2**j), i + 1
        x, i = _fc_conv(state, f"encoder.model.{i + 1}", F.elu(x), conf, stride=ratio), i + 2
    if conf["seq_model"] == "lstm":
        x, i = _fc_lstm(state, f"encoder.model.{i}", x, conf["seq_layer_num"]), i + 1
    return _fc_conv(state, f"encoder.model.{i + 1}", F.elu(x), conf)


def funcodec_decode_latent(state: dict, conf: dict, latent: torch.Tensor) -> torch.Tensor:
    """SEANetDecoder.model on a latent [B, D, N]: waveform [B, 1, N * hop]."""
    x, i = _fc_conv(state, "decoder.model.0", latent, conf), 1
    if conf["seq_model"] == "lstm":
        x, i = _fc_lstm(state, f"decoder.model.{i}", x, conf["seq_layer_num"]), i + 1
    for ratio in conf["ratios"]:
        x, i = _fc_conv_transpose(state, f"decoder.model.{i + 1}", F.elu(x), conf, ratio), i + 2
        for j in range(conf["n_residual_layers"]):
            x, i = _fc_resblock(state, f"decoder.model.{i}", x, conf, 2**j), i + 1
    return _fc_conv(state, f"decoder.model.{i + 1}", F.elu(x), conf)


def _codebook_pieces(state: dict, n_q: int) -> dict[str, torch.Tensor]:
    """The quantizer buffers of either layout, one entry per (layer, buffer)."""
    pieces = {}
    for name in ("embed", "embed_avg", "cluster_size", "inited"):
        stacked = state.get(f"quantizer.rq.model.{name}")
        for i in range(n_q):
            key = f"quantizer.rq.model.layers.{i}._codebook.{name}"
            pieces[key] = stacked[i] if stacked is not None else state[key]
    return pieces


TIME = {"n_filters": 4, "ratios": [4, 2], "dimension": 8, "n_residual_layers": 1, "norm": "time_group_norm",
        "causal": False, "seq_model": "lstm", "seq_layer_num": 1}
SOUNDSTREAM = {**TIME, "norm": "weight_norm", "causal": True, "n_residual_layers": 3, "seq_model": "none",
               "dimension": 16}


@pytest.mark.parametrize("conf,ddp", [(TIME, True), (SOUNDSTREAM, True), (TIME, False)])
def test_funcodec_checkpoint_computes_what_funcodec_computes(conf, ddp):
    state = funcodec_checkpoint(conf, ddp=ddp)
    converted = funcodec_to_codec(state, funcodec_yaml(conf))
    codec, ours = converted.codec, converted.codec.state_dict()
    assert converted.audio_normalize is True
    assert codec.config.model.causal == conf["causal"]
    assert codec.config.model.lstm == (1 if conf["seq_model"] == "lstm" else 0)
    assert codec.config.quantizer.dropout_choices == [1, 2, 4] and codec.frame_rate == 2000.0
    # every generator tensor of the checkpoint lands in exactly one of our tensors, unchanged, and every
    # one of ours but the dropout step counter comes from the checkpoint (inited flags are all 1.0)
    theirs = {k: v for k, v in state.items() if k.startswith(("encoder.", "decoder."))}
    theirs |= _codebook_pieces(state, 4)
    holders = {k: [m for m, w in ours.items() if w.shape == v.shape and torch.equal(w, v)]
               for k, v in theirs.items() if not k.endswith(".inited")}
    assert all(len(found) == 1 for found in holders.values()), holders
    filled = {found[0] for found in holders.values()}
    assert set(ours) - filled == {"quantizer.step"} | {f"quantizer.layers.{i}.inited" for i in range(4)}
    assert all(ours[f"quantizer.layers.{i}.inited"].item() == 1.0 for i in range(4))
    # the encoder and decoder compute FunCodec's SEANet on the raw checkpoint tensors (float64)
    raw = {k: v.double() for k, v in state.items()}
    codec = codec.double()
    wav = 0.3 * torch.sin(torch.arange(1000, dtype=torch.float64) / 7.0)[None, None] + 0.05 * torch.randn(
        2, 1, 1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        latent = codec.encode_latent(wav)
        expected = funcodec_encode_latent(raw, conf, wav)
        assert latent.shape == expected.shape == (2, conf["dimension"], 125)
        torch.testing.assert_close(latent, expected, rtol=1e-9, atol=1e-9)
        decoded = codec.decode_latent(latent)
        assert decoded.shape == (2, 1, 1000)
        torch.testing.assert_close(decoded, funcodec_decode_latent(raw, conf, latent), rtol=1e-9, atol=1e-9)
    # the codes are FunCodec's nearest-codeword residual search over its stacked codebooks
    embed = torch.stack([theirs[f"quantizer.rq.model.layers.{i}._codebook.embed"] for i in range(4)])
    latent = torch.randn(2, conf["dimension"], 30)
    residual, expected = latent.transpose(1, 2).clone(), []
    for i in range(4):
        index = torch.cdist(residual, embed[i][None].expand(2, -1, -1)).argmin(-1)
        expected.append(index)
        residual = residual - embed[i][index]
    assert torch.equal(codec.float().quantizer.encode(latent), torch.stack(expected, 1))


def test_funcodec_refusals():
    state = funcodec_checkpoint(TIME)
    with pytest.raises(ValueError, match="freq_codec.* cannot be converted"):
        funcodec_to_codec(state, {**funcodec_yaml(TIME), "model": "freq_codec"})
    with pytest.raises(ValueError, match="seq_model 'transformer'"):
        bad = funcodec_yaml(TIME)
        bad["encoder_conf"]["seq_model"] = bad["decoder_conf"]["seq_model"] = "transformer"
        funcodec_to_codec(state, bad)
    with pytest.raises(ValueError, match="differs from decoder_conf.norm"):
        bad = funcodec_yaml(TIME)
        bad["decoder_conf"]["norm"] = "weight_norm"
        funcodec_to_codec(state, bad)
    broken = dict(state)
    broken.pop("decoder.model.0.conv.conv.bias")
    with pytest.raises(ValueError, match="missing \\['decoder.layers.0.conv.bias'\\]"):
        funcodec_to_codec(broken, funcodec_yaml(TIME))
    with pytest.raises(ValueError, match="shape"):
        funcodec_to_codec(funcodec_checkpoint({**TIME, "n_filters": 8}), funcodec_yaml(TIME))


def test_convert_funcodec_command(tmp_path, capsys):
    release = tmp_path / "release"
    release.mkdir()
    torch.save(funcodec_checkpoint(TIME), release / "model.pth")
    (release / "config.yaml").write_text(yaml.safe_dump(funcodec_yaml(TIME)))
    out = tmp_path / "converted"
    assert main(["convert", "--from", "funcodec", str(release), str(out)]) == 0
    stdout = capsys.readouterr()[0]
    assert "model id" in stdout and "audio_normalize" in stdout
    sf.write(tmp_path / "a.wav", 0.1 * np.sin(np.arange(3200) / 5.0), 16000)
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "--model", str(out)]) == 0
    assert load_tokens(tmp_path / "a.npz").codes.shape == (1, 4, 400)
    assert main(["convert", "--from", "funcodec", str(release / "model.pth"), str(out)]) == 2
    assert "already holds a model" in capsys.readouterr()[1]
    assert main(["convert", "--from", "funcodec", str(release / "model.pth"), str(out), "--force"]) == 0


def test_convert_options_anywhere_and_provenance(tmp_path, capsys):
    """Options before or after CHECKPOINT / OUT_DIR parse alike (CHECKPOINT is optional for
    --from dcase-baseline); provenance.json records the source file, its sha256, the loader and config."""
    torch.save(funcodec_checkpoint(TIME), tmp_path / "weights.pth")
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(funcodec_yaml(TIME)))
    ckpt, conf = str(tmp_path / "weights.pth"), str(tmp_path / "conf.yaml")
    orders = {"after_checkpoint": ["convert", "--from", "funcodec", ckpt, "--config", conf, "OUT", "--force"],
              "before": ["convert", "--force", "--config", conf, "--from", "funcodec", ckpt, "OUT"],
              "after_out_dir": ["convert", ckpt, "OUT", "--from", "funcodec", "--config", conf]}
    written = {}
    for name, argv in orders.items():
        out = tmp_path / name
        assert main([str(out) if a == "OUT" else a for a in argv]) == 0, capsys.readouterr()[1]
        written[name] = (out / "model.safetensors").read_bytes()
        record = json.loads((out / "provenance.json").read_text())
        assert record["source"] == "funcodec" and record["source_file"] == str(Path(ckpt).resolve())
        assert record["sha256"] == hashlib.sha256(Path(ckpt).read_bytes()).hexdigest()
        assert record["loader"] == "torch.load(weights_only=True)" and record["config_file"] == conf
        assert record["source_config"] == funcodec_yaml(TIME)
    assert written["after_checkpoint"] == written["before"] == written["after_out_dir"]
    capsys.readouterr()
    assert main(["convert", "--from", "funcodec", ckpt, "--config", conf]) == 2  # no OUT_DIR: usage error
    assert "CHECKPOINT before OUT_DIR" in capsys.readouterr()[1]


@pytest.mark.parametrize("case", ["missing", "random", "pickle", "no_config", "not_a_state_dict"])
def test_convert_bad_checkpoints_fail_cleanly(tmp_path, capsys, case):
    ckpt = tmp_path / "model.pth"
    if case == "random":
        ckpt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif case == "pickle":
        import pickle

        ckpt.write_bytes(pickle.dumps({"x": object()}))
    elif case == "no_config":
        torch.save(funcodec_checkpoint(TIME), ckpt)
    elif case == "not_a_state_dict":
        torch.save([1, 2, 3], ckpt)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(funcodec_yaml(TIME)))
    elif case != "missing":
        raise AssertionError(case)
    if case in ("random", "pickle"):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(funcodec_yaml(TIME)))
    code = main(["convert", "--from", "funcodec", str(ckpt), str(tmp_path / "out")])
    err = capsys.readouterr()[1]
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert main(["convert", "--from", "encodec", str(ckpt), str(tmp_path / "out")]) == 2
    capsys.readouterr()


def test_convert_encodec_command_gives_encodecs_codes(tmp_path, capsys):
    encodec = import_reference("encodec")
    torch.manual_seed(0)
    ref = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    wav = 0.3 * torch.sin(torch.arange(12_000) / 9.0)[None, None] + 0.02 * torch.randn(1, 1, 12_000)
    with torch.no_grad():
        frames = ref.encoder(wav).transpose(1, 2).reshape(-1, 128)
        for i, layer in enumerate(ref.quantizer.vq.layers):  # random spread codebooks, as test_encodec_compat
            book = layer._codebook
            centre = frames.mean(0) if i == 0 else 0
            book.embed.copy_(torch.randn(book.embed.shape) * frames.std(0) * 0.8**i + centre)
            book.inited.fill_(1.0)
    torch.save(ref.state_dict(), tmp_path / "encodec_24khz.th")
    checkpoint = str(tmp_path / "encodec_24khz.th")
    assert main(["convert", "--from", "encodec", checkpoint, str(tmp_path / "m")]) == 0
    capsys.readouterr()
    record = json.loads((tmp_path / "m" / "provenance.json").read_text())
    assert record["source"] == "encodec" and record["preset"] == "encodec_24khz"
    assert record["sha256"] == hashlib.sha256((tmp_path / "encodec_24khz.th").read_bytes()).hexdigest()
    ours = Codec.from_pretrained(tmp_path / "m")
    ref.set_target_bandwidth(6.0)
    with torch.no_grad():
        (expected, _), = ref.encode(wav)
        codes = ours.encode(wav, bandwidth=6.0)
    assert codes.shape == expected.shape == (1, 8, 38) and torch.equal(codes, expected)
    assert expected[:, 0].unique().numel() > 5


def test_unknown_funcodec_options_are_refused():
    config = funcodec_yaml(TIME)
    config["encoder_conf"]["conv_group_ratio"] = 4
    with pytest.raises(ValueError, match="encoder_conf: option\\(s\\) funcodec_lite does not know: "
                                         "\\['conv_group_ratio'\\]"):
        funcodec_to_codec(funcodec_checkpoint(TIME), config)
