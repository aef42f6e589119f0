"""Tests for the flow vocoders: invertibility and exact log-determinants of every layer and of WaveGlow and
FloWaveNet, ActNorm's data-dependent initialisation, likelihood training and model directories."""

import importlib
import json
import math
import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.functional import jacobian
from torch.nn.parallel import DistributedDataParallel

from funcodec_lite import load_model_dir
from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.train.engine_config import LoopConfig
from funcodec_lite.utils.weights import read_provenance
from funcodec_lite.vocoders.flow_layers import (
    ActNorm,
    AffineCoupling,
    InvertibleConv1x1,
    Squeeze,
    SwapHalves,
    squeeze,
    unsqueeze,
)
from funcodec_lite.vocoders.flowavenet import FloWaveNet, FloWaveNetConfig, flowavenet_tiny
from funcodec_lite.vocoders.likelihood_training import (
    LIKELIHOOD_LOOP,
    TrainingLoss,
    train_likelihood_vocoder,
)
from funcodec_lite.vocoders.waveglow import WaveGlow, WaveGlowConfig, waveglow_tiny


def _randomize_couplings(model: nn.Module, std: float = 0.2, seed: int = 1) -> None:
    """Gives every coupling's zero-initialised output conv random weights, so the flows are not identities."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, AffineCoupling):
                module.end.weight.copy_(torch.randn(module.end.weight.shape, generator=generator) * std)
                module.end.bias.copy_(torch.randn(module.end.bias.shape, generator=generator) * std)


def _brute_logdet(fn, x: torch.Tensor) -> float:
    """log|det d fn(x) / dx| of one example x [1, ...] (float64 Jacobian of the flattened map)."""
    flat = x.double().flatten()
    jac = jacobian(lambda v: fn(v.view_as(x.double())).flatten(), flat, vectorize=True)
    return float(torch.linalg.slogdet(jac)[1])


def _layer_cases() -> dict[str, tuple[nn.Module, bool]]:
    """name -> (layer, takes conditioning), on 6 channels with 5 conditioning channels."""
    torch.manual_seed(0)
    actnorm = ActNorm(6)
    actnorm.initialize(torch.randn(4, 6, 32) * 3.0 + 1.0)
    coupling = AffineCoupling(6, 5, hidden_channels=8, num_layers=3)
    odd_coupling = AffineCoupling(5, 5, hidden_channels=8, num_layers=2)
    for layer in (coupling, odd_coupling):
        _randomize_couplings(layer)
    return {"conv1x1": (InvertibleConv1x1(6), False), "actnorm": (actnorm, False),
            "coupling": (coupling, True), "coupling_odd": (odd_coupling, True),
            "squeeze": (Squeeze(2), False), "swap": (SwapHalves(), False)}


@pytest.mark.parametrize("name", list(_layer_cases()))
def test_layer_inverse_and_logdet(name):
    layer, conditioned = _layer_cases()[name]
    channels = 5 if name == "coupling_odd" else 6
    x = torch.randn(2, channels, 16, generator=torch.Generator().manual_seed(2))
    cond = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(3))
    args = (cond,) if conditioned else ()
    y, logdet = layer(x, *args)
    assert logdet.shape == (2,)
    if name != "squeeze":
        assert (y - x).abs().max() > 1e-2  # not trivially the identity
    assert (layer.inverse(y, *args) - x).abs().max() < 1e-4

    layer = layer.double()
    for b in range(2):
        brute = _brute_logdet(lambda v, b=b: layer(v, *(a[b:b + 1].double() for a in args))[0], x[b:b + 1])
        assert abs(float(logdet[b].detach()) - brute) < 1e-3, (name, float(logdet[b].detach()), brute)


def test_squeeze_layout():
    x = torch.arange(12.0).view(1, 1, 12)
    y = squeeze(x, 4)
    assert y.shape == (1, 4, 3)
    assert y[0, :, 1].tolist() == [4.0, 5.0, 6.0, 7.0]  # WaveGlow's groups of consecutive samples
    two = torch.arange(24.0).view(1, 2, 12)
    assert torch.equal(unsqueeze(squeeze(two, 3), 3), two)
    assert squeeze(two, 3)[0, 3:6, 0].tolist() == [12.0, 13.0, 14.0]  # channel c -> rows c·f ... c·f + f - 1


def test_conv1x1_starts_orthogonal():
    torch.manual_seed(0)
    w = InvertibleConv1x1(8).weight()
    assert torch.allclose(w @ w.T, torch.eye(8), atol=1e-5)


def test_coupling_starts_as_identity():
    torch.manual_seed(0)
    coupling = AffineCoupling(4, 3, hidden_channels=8, num_layers=2)
    x, cond = torch.randn(2, 4, 20), torch.randn(2, 3, 20)
    y, logdet = coupling(x, cond)
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(2))


def test_actnorm_data_dependent_init_and_state_dict():
    torch.manual_seed(0)
    scale, shift = torch.tensor([0.1, 1.0, 5.0, 20.0])[:, None], torch.tensor([1.0, -2.0, 0.0, 7.0])[:, None]
    x = torch.randn(3, 4, 50) * scale + shift
    norm = ActNorm(4)
    assert not bool(norm.initialized)
    y, _ = norm(x)
    assert bool(norm.initialized)
    assert y.mean((0, 2)).abs().max() < 1e-5
    assert (y.var((0, 2), unbiased=False) - 1.0).abs().max() < 1e-4
    y2, _ = norm(x * 3.0)  # a second batch does not re-initialise
    assert torch.allclose(y2, (x * 3.0 + norm.bias) * norm.log_scale.exp())

    state = norm.state_dict()
    assert set(state) == {"bias", "log_scale", "initialized"}
    fresh = ActNorm(4)
    fresh.load_state_dict(state)
    assert bool(fresh.initialized)
    assert torch.equal(fresh(x)[0], y)


# ---------------------------------------------------------------------------------------------------
# Whole models

# Tiny-T variants for brute-force Jacobians: hop 16, 8 mel bands, 2 frames = 32 samples.
JACOBIAN_CONFIGS = {
    "waveglow": WaveGlowConfig(num_mels=8, upsample_rates=[4, 4], upsampler="conv1d", n_group=8, n_flows=4,
                               n_early_every=2, n_early_size=2, wn_channels=8, wn_layers=2),
    "flowavenet": FloWaveNetConfig(num_mels=8, upsample_rates=[4, 4], n_blocks=3, n_flows=2, wn_channels=8,
                                   wn_layers=2, split_every=1),  # splits after blocks 1 and 2
}
MODELS = {"waveglow": (WaveGlow, waveglow_tiny), "flowavenet": (FloWaveNet, flowavenet_tiny)}


def _data(num_mels: int, frames: int, hop: int, batch: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, num_mels, frames, generator=generator) - 4.0
    wav = 0.1 * torch.randn(batch, 1, frames * hop, generator=generator)
    return mel, wav


def _random_model(kind: str, config) -> nn.Module:
    """A model with random couplings and ActNorms initialised on a batch (so nothing is the identity)."""
    torch.manual_seed(0)
    model = MODELS[kind][0](config)
    _randomize_couplings(model)
    with torch.no_grad():
        model.encode(*reversed(_data(config.num_mels, 2, config.hop_length, batch=3, seed=5)))
    return model.eval()


@pytest.mark.parametrize("kind", list(MODELS))
def test_model_inverse(kind):
    model = _random_model(kind, MODELS[kind][1]())
    mel, wav = _data(80, 4, 256)
    with torch.no_grad():
        z, logdet = model.encode(wav, mel)
        assert z.shape == wav.shape and logdet.shape == (2,)
        assert (z - wav).abs().max() > 0.1
        assert (model.decode(z, mel) - wav).abs().max() < 1e-4
        out = model.synthesize(mel, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 1024) and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", list(MODELS))
def test_model_logdet_matches_jacobian(kind):
    config = JACOBIAN_CONFIGS[kind]
    model = _random_model(kind, config).double()
    mel, wav = (t.double() for t in _data(config.num_mels, 2, config.hop_length, batch=1))
    assert wav.shape[-1] == 32
    logdet = float(model.encode(wav, mel)[1][0].detach())
    brute = _brute_logdet(lambda v: model.encode(v, mel)[0], wav)
    assert abs(brute) > 0.3  # a real change of volume
    assert abs(logdet - brute) < 1e-6 * max(1.0, abs(brute)), (logdet, brute)


def test_training_loss_is_the_gaussian_nll_minus_logdet():
    model = _random_model("flowavenet", JACOBIAN_CONFIGS["flowavenet"])
    mel, wav = _data(8, 2, 16)
    terms = model.training_loss(mel, wav)
    z, logdet = model.encode(wav, mel)
    nll = (z.pow(2) / 2 + 0.5 * math.log(2 * math.pi)).sum((1, 2)) - logdet
    assert torch.allclose(terms["loss"], nll.mean() / 32, atol=1e-5)
    assert torch.allclose(terms["loss"], terms["prior"] - terms["logdet"])


def test_preset_sizes():
    counts = {}
    for name, (cls, _) in MODELS.items():
        module = importlib.import_module(cls.__module__)
        for preset, make in module.PRESETS.items():
            with torch.device("meta"):
                counts[f"{name}/{preset}"] = sum(p.numel() for p in cls(make()).parameters())
            assert make().hop_length == 256 and make().num_mels == 80
    assert counts == {"waveglow/paper": 84_406_400, "waveglow/tiny": 271_402,
                      "flowavenet/paper": 173_806_238, "flowavenet/tiny": 211_058}


# ---------------------------------------------------------------------------------------------------
# Training through the engine, and the model directory it exports

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """kind -> (trained tiny model, logged losses, exp dir): 30 steps on 8 sines of 2,048 samples."""
    frames, mel_config = 8, FoleyMelConfig(num_samples=None)
    t = torch.arange(frames * mel_config.hop_length) / mel_config.sample_rate
    freqs = torch.tensor([220.0, 330.0, 440.0, 550.0, 660.0, 880.0, 990.0, 1100.0])
    wavs = 0.5 * torch.sin(2 * math.pi * freqs[:, None] * t)
    mels = FoleyMel(mel_config)(wavs)
    loop = LoopConfig.from_dict({"steps": 30, "batch_size": 4, "lr": 1e-3, "log_every": 5,
                                 "checkpoint_every": 1000}, LIKELIHOOD_LOOP)
    runs = {}
    for kind, (cls, preset) in MODELS.items():
        exp_dir = tmp_path_factory.mktemp(kind)
        build = lambda cls=cls, preset=preset: cls(preset())  # noqa: E731
        model = train_likelihood_vocoder(build, mels, wavs, loop, exp_dir, segment_frames=4)
        lines = (exp_dir / "train.jsonl").read_text().splitlines()
        runs[kind] = model, [json.loads(line)["loss"] for line in lines], exp_dir
    return runs


@pytest.mark.parametrize("kind", list(MODELS))
def test_likelihood_training_lowers_the_nll(trained, kind):
    _, losses, _ = trained[kind]
    assert len(losses) == 6
    assert 0.2 < losses[0] < 1.0  # about a standard Gaussian's NLL of sines of amplitude 0.5 (0.98 nats)
    assert losses[-1] < losses[0] - 0.5, losses  # nats per sample, in 30 steps


@pytest.mark.parametrize("kind", list(MODELS))
def test_model_dir_round_trip(trained, kind):
    model, _, exp_dir = trained[kind]
    loaded = load_model_dir(exp_dir / "model", kind=kind)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert read_provenance(exp_dir / "model")["steps"] == 30
    noise = 0.3 * torch.randn(1, 1024, generator=torch.Generator().manual_seed(7))
    mel = FoleyMel(FoleyMelConfig(num_samples=None))(noise)
    outputs = [m.synthesize(mel, generator=torch.Generator().manual_seed(3)) for m in (model, loaded)]
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], model.synthesize(mel, generator=torch.Generator().manual_seed(4)))
    norms = [m for m in loaded.modules() if isinstance(m, ActNorm)]
    assert len(norms) == (8 if kind == "flowavenet" else 0)
    assert all(bool(norm.initialized) for norm in norms)
    wav = outputs[0]
    loaded.train()  # a training-mode forward of the loaded model must not re-initialise its ActNorms
    assert torch.equal(loaded.encode(wav, mel)[0], model.encode(wav, mel)[0])


@pytest.mark.parametrize("kind", list(MODELS))
def test_mismatched_lengths_are_refused(kind):
    model = MODELS[kind][0](MODELS[kind][1]())
    mel, wav = _data(80, 4, 256)
    with pytest.raises(ValueError, match="not 4 frames of hop 256"):
        model.encode(wav[..., :-256], mel)
    with pytest.raises(ValueError, match=r"expected mel \[B, 80, F\]"):
        model.synthesize(mel[:, :40])


# ---------------------------------------------------------------------------------------------------
# Under DistributedDataParallel (one gloo process: two would cost seconds of start-up)

def test_training_under_ddp(tmp_path):
    """DDP without find_unused_parameters needs a gradient for every trainable parameter (it raises at the
    second step otherwise), and ActNorm's initialisation goes through the all-reduce of its statistics."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        for kind, (cls, preset) in MODELS.items():
            torch.manual_seed(0)
            model = cls(preset())
            ddp = DistributedDataParallel(TrainingLoss(model))
            optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
            mel, wav = _data(80, 4, 256, batch=2, seed=11)
            for _ in range(3):
                loss = ddp(mel, wav)["loss"]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            assert torch.isfinite(loss), kind
    finally:
        dist.destroy_process_group()
