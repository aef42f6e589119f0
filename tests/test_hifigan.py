"""Tests for the HiFi-GAN generator, its official-checkpoint loader and its training losses."""

import dataclasses
import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils import weight_norm as old_weight_norm

from funcodec_lite.audio.mel_frontend import FoleyMel, FoleyMelConfig
from funcodec_lite.discriminators import DiscriminatorConfig, MPDConfig, MSDConfig
from funcodec_lite.vocoders.hifigan import (
    PRESETS,
    HiFiGANConfig,
    HiFiGANGenerator,
    hifigan_tiny,
    hifigan_v1,
    hifigan_v3,
    load_official_generator,
    official_key_map,
)
from funcodec_lite.vocoders.hifigan_loss import (
    HiFiGANLossConfig,
    build_discriminator,
    build_loss_mel,
    hifigan_discriminator_loss,
    hifigan_generator_loss,
)

SMALL_LOSS = HiFiGANLossConfig(
    discriminator=DiscriminatorConfig(
        kinds=["mpd", "msd"],
        mpd=MPDConfig(channels=[4, 8, 16, 16, 16]),
        msd=MSDConfig(channels=[8, 8, 16, 16, 16, 16, 16], groups=[1, 4, 8, 8, 8, 8, 1]),
    )
)
# V1's layout (resblock "1") at a CPU-friendly width, and V3's (resblock "2").
SMALL_V1 = HiFiGANConfig(upsample_initial_channel=32)
SMALL_V3 = dataclasses.replace(hifigan_v3(), upsample_initial_channel=32)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _mel(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 80, frames, generator=torch.Generator().manual_seed(seed)) - 5.0


class _OfficialLayoutGenerator(nn.Module):
    """A from-the-paper re-implementation with the public repository's module names and old-style
    weight norm (``weight_g``/``weight_v``), used to write checkpoints in the official key layout."""

    def __init__(self, cfg: HiFiGANConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.upsample_initial_channel
        self.conv_pre = old_weight_norm(nn.Conv1d(cfg.num_mels, ch, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            old_weight_norm(nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            width = ch // 2 ** (i + 1)
            for k, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                block = nn.Module()
                conv = lambda d, k=k, width=width: old_weight_norm(  # noqa: E731
                    nn.Conv1d(width, width, k, 1, dilation=d, padding=(k * d - d) // 2)
                )
                if cfg.resblock == "1":
                    block.convs1 = nn.ModuleList(conv(d) for d in dilations)
                    block.convs2 = nn.ModuleList(conv(1) for _ in dilations)
                else:
                    block.convs = nn.ModuleList(conv(d) for d in dilations)
                self.resblocks.append(block)
        self.conv_post = old_weight_norm(nn.Conv1d(width, 1, 7, 1, padding=3))

    def _block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.resblock == "1":
            for c1, c2 in zip(block.convs1, block.convs2):
                x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        else:
            for c in block.convs:
                x = c(F.leaky_relu(x, 0.1)) + x
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.cfg.resblock_kernel_sizes)
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            x = sum(self._block(self.resblocks[i * n + j], x) for j in range(n)) / n
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # default slope 0.01, as published


def _official(cfg: HiFiGANConfig, seed: int) -> _OfficialLayoutGenerator:
    torch.manual_seed(seed)
    ref = _OfficialLayoutGenerator(cfg)
    with torch.no_grad():  # make g differ from ||v|| so a swapped or ignored gain would show
        for name, p in ref.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(torch.rand(p.shape) + 0.5)
    return ref


@pytest.mark.parametrize("name", ["v1", "v2", "v3", "tiny"])
def test_every_preset_equals_the_official_layout_reference(name, tmp_path):
    cfg = PRESETS[name]()
    ref = _official(cfg, seed=11).eval()
    torch.save({"generator": ref.state_dict()}, tmp_path / "g")
    generator = load_official_generator(tmp_path / "g", cfg)
    mel = _mel(3)
    with torch.no_grad():
        wav, expected = generator(mel), ref(mel)
    assert generator.hop_length == 256
    assert wav.shape == expected.shape == (1, 1, 768)
    assert float(expected.std()) > 1e-3  # a signal, not a constant both could agree on
    torch.testing.assert_close(wav, expected, rtol=1e-5, atol=1e-6)


def test_parameter_counts_match_the_paper():
    counts = {name: _count(HiFiGANGenerator(PRESETS[name]())) for name in PRESETS}
    assert counts == {"v1": 13_936_130, "v2": 928_514, "v3": 1_464_322, "tiny": 30_722}
    for name, published in (("v1", 13.92e6), ("v2", 0.93e6), ("v3", 1.46e6)):
        assert abs(counts[name] - published) / published < 0.02


def test_official_v1_key_layout():
    ref_keys = set(_OfficialLayoutGenerator(hifigan_v1()).state_dict())
    ours = {f"{m}.{s}" for m in official_key_map(hifigan_v1()) for s in ("weight_g", "weight_v", "bias")}
    assert ours == ref_keys
    assert len(ref_keys) == 234  # conv_pre, 4 ups, 12 blocks x 6 convs, conv_post; 3 tensors each
    for key in ("conv_pre.weight_g", "ups.3.weight_v", "resblocks.0.convs1.0.weight_v",
                "resblocks.11.convs2.2.bias", "conv_post.weight_g"):
        assert key in ref_keys


@pytest.mark.parametrize("cfg", [SMALL_V1, SMALL_V3], ids=["resblock1", "resblock2"])
def test_official_checkpoint_loads_and_gives_the_same_audio(cfg, tmp_path):
    ref = _official(cfg, seed=1).eval()
    path = tmp_path / "g_00935000"
    torch.save({"generator": ref.state_dict()}, path)
    generator = load_official_generator(path, cfg)
    assert not generator.training
    assert parametrize.is_parametrized(generator.conv_in, "weight")
    mel = _mel(6, seed=2)
    with torch.no_grad():
        expected = ref(mel)
        torch.testing.assert_close(generator(mel), expected, rtol=1e-5, atol=1e-6)
        assert generator.remove_weight_norm() == len(official_key_map(cfg))
        torch.testing.assert_close(generator(mel), expected, rtol=1e-5, atol=1e-6)


def test_official_checkpoint_without_weight_norm_loads_folded(tmp_path):
    ref = _official(SMALL_V3, seed=3).eval()
    mel = _mel(4, seed=4)
    with torch.no_grad():
        expected = ref(mel)
    for module in ref.modules():  # as the official remove_weight_norm() leaves it
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    torch.save(ref.state_dict(), tmp_path / "g_plain")  # a bare state dict is accepted too
    generator = load_official_generator(tmp_path / "g_plain", SMALL_V3)
    assert not parametrize.is_parametrized(generator.conv_in, "weight")
    with torch.no_grad():
        torch.testing.assert_close(generator(mel), expected, rtol=1e-5, atol=1e-6)


def test_restore_weight_norm_keeps_the_output_and_the_training_layout():
    torch.manual_seed(12)
    generator = HiFiGANGenerator(SMALL_V1).eval()
    fresh_keys = set(generator.state_dict())
    mel = _mel(4, seed=12)
    with torch.no_grad():
        before = generator(mel)
        folded = generator.remove_weight_norm()
        assert generator.restore_weight_norm() == folded == len(official_key_map(SMALL_V1))
        torch.testing.assert_close(generator(mel), before, rtol=1e-5, atol=1e-6)
    assert set(generator.state_dict()) == fresh_keys
    g = generator.conv_in.parametrizations.weight.original0  # g = ||w|| per output channel, v = w
    v = generator.conv_in.parametrizations.weight.original1
    torch.testing.assert_close(g, v.norm(dim=(1, 2), keepdim=True))
    assert generator.restore_weight_norm() == 0  # nothing left to restore


def test_folded_official_checkpoint_imported_by_the_recipe_loads_in_stage_6(tmp_path):
    from funcodec_lite.recipes.dcase_foley.command import main
    from funcodec_lite.vocoders.hifigan_training import load_vocoder

    ref = _official(SMALL_V3, seed=13).eval()
    mel = _mel(4, seed=13)
    with torch.no_grad():
        expected = ref(mel)
    for module in ref.modules():  # folded, as the official remove_weight_norm() leaves it
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    torch.save({"generator": ref.state_dict()}, tmp_path / "g_plain")
    official = {**dataclasses.asdict(SMALL_V3), "num_gpus": 0, "learning_rate": 0.0002}
    (tmp_path / "config.json").write_text(json.dumps(official))
    (tmp_path / "run.yaml").write_text("vocoder: tiny\n")
    code = main(["vocoder", "--config", str(tmp_path / "run.yaml"), "--exp", str(tmp_path / "exp" / "run"),
                 "--vocoder-exp", str(tmp_path / "vocoder"), "--classifier-exp", str(tmp_path / "classifier"),
                 "--official-checkpoint", str(tmp_path / "g_plain"),
                 "--official-config", str(tmp_path / "config.json")])
    assert code == 0
    vocoder = load_vocoder(tmp_path / "vocoder" / "model")  # as stage 6 loads it
    with torch.no_grad():
        torch.testing.assert_close(vocoder(mel), expected, rtol=1e-5, atol=1e-5)


def test_recipe_refuses_a_vocoder_whose_hop_differs_from_the_mel_hop(tmp_path, capsys):
    from funcodec_lite.recipes.dcase_foley.command import main

    hop_128 = {"upsample_rates": [8, 4, 4], "upsample_kernel_sizes": [16, 8, 8],
               "upsample_initial_channel": 32, "resblock": "2", "resblock_kernel_sizes": [3],
               "resblock_dilation_sizes": [[1, 3]]}
    ref = _official(HiFiGANConfig(**hop_128), seed=14)
    torch.save({"generator": ref.state_dict()}, tmp_path / "g")
    (tmp_path / "config.json").write_text(json.dumps(hop_128))
    (tmp_path / "run.yaml").write_text("vocoder: tiny\n")
    common = ["--config", str(tmp_path / "run.yaml"), "--exp", str(tmp_path / "exp" / "run"),
              "--vocoder-exp", str(tmp_path / "vocoder"), "--classifier-exp", str(tmp_path / "classifier")]
    capsys.readouterr()  # what building the reference printed (torch's weight_norm deprecation) is not ours
    code = main(["vocoder", *common, "--official-checkpoint", str(tmp_path / "g"),
                 "--official-config", str(tmp_path / "config.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "hop_length 128" in err and "mel front end's hop 256" in err
    assert not (tmp_path / "vocoder").exists()
    # training one is refused the same way, before any data is read
    (tmp_path / "run.yaml").write_text(json.dumps({"vocoder": hop_128}))
    assert main(["vocoder", *common]) == 2
    assert "hop_length 128" in capsys.readouterr().err


def test_loader_rejects_a_mismatched_config(tmp_path):
    torch.save({"generator": _official(SMALL_V3, seed=5).state_dict()}, tmp_path / "g")
    with pytest.raises(KeyError, match="convs1"):
        load_official_generator(tmp_path / "g", SMALL_V1)


def test_config_from_the_official_json():
    official = {"resblock": "2", "num_gpus": 0, "batch_size": 16, "learning_rate": 0.0002,
                "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
                "upsample_initial_channel": 256, "resblock_kernel_sizes": [3, 5, 7],
                "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]], "num_mels": 80, "fmax_for_loss": None}
    assert HiFiGANConfig.from_official(official) == hifigan_v3()


def test_remove_weight_norm_keeps_the_output():
    torch.manual_seed(6)
    generator = HiFiGANGenerator(hifigan_tiny()).eval()
    mel = _mel(5, seed=6)
    with torch.no_grad():
        before = generator(mel)
        assert generator.remove_weight_norm() == 1 + 3 + 3 * 2 + 1  # conv_in, 3 ups, 3 x 2 convs, conv_out
        torch.testing.assert_close(generator(mel), before, rtol=1e-5, atol=1e-6)
    assert _count(generator) == 30_577


def test_loss_mel_is_full_band_and_keeps_length():
    loss_mel = build_loss_mel()
    assert loss_mel.config.fmax is None and loss_mel.config.num_samples is None
    assert float(loss_mel.fbank[372:].sum()) > 0  # filters above 8 kHz (bin 371.5)
    assert loss_mel(torch.zeros(2, 1, 8192)).shape == (2, 80, 32)


def test_loss_terms_with_the_v1_discriminators():
    torch.manual_seed(7)
    discriminator = build_discriminator()
    assert list(discriminator.discriminators) == ["mpd", "msd"] and len(discriminator.names) == 8
    gen = torch.Generator().manual_seed(7)
    wav = 0.3 * torch.randn(1, 1, 2048, generator=gen)
    wav_hat = wav + 0.1 * torch.randn(1, 1, 2048, generator=gen)
    with torch.no_grad():
        loss = hifigan_generator_loss(discriminator, wav, wav_hat, build_loss_mel())
        d_loss = hifigan_discriminator_loss(discriminator, wav, wav_hat)
    for term in (*loss, d_loss):
        assert torch.isfinite(term) and term.item() > 0
    assert loss.total.item() == pytest.approx(loss.adversarial.item() + 2 * loss.feature.item()
                                              + 45 * loss.mel.item(), rel=1e-5)


def test_loss_terms_follow_the_official_definitions():
    torch.manual_seed(8)
    # eval: the MSD's spectral norm then keeps its power-iteration vectors fixed between calls
    discriminator = build_discriminator(SMALL_LOSS).eval()
    loss_mel = build_loss_mel(SMALL_LOSS)
    gen = torch.Generator().manual_seed(8)
    wav, wav_hat = torch.randn(2, 1, 2048, generator=gen), torch.randn(2, 1, 2048, generator=gen)
    wav_hat.requires_grad_()
    loss = hifigan_generator_loss(discriminator, wav, wav_hat, loss_mel, SMALL_LOSS)
    loss.total.backward()
    assert wav_hat.grad is not None and float(wav_hat.grad.abs().sum()) > 0
    with torch.no_grad():
        real, fake = discriminator(wav), discriminator(wav_hat)
        expected_mel = (loss_mel(wav) - loss_mel(wav_hat)).abs().mean().item()
    # feature matching sums over every map and, like the official fmap lists, the output logits too
    expected_fm = sum(
        (r - f).abs().mean().item()
        for (real_logits, real_maps), (fake_logits, fake_maps) in zip(real, fake)
        for r, f in zip([*real_maps, real_logits], [*fake_maps, fake_logits])
    )
    assert sum(len(maps) + 1 for _, maps in real) == 5 * 6 + 3 * 8
    assert loss.feature.item() == pytest.approx(expected_fm, rel=1e-5)
    expected_adv = sum(((1 - d) ** 2).mean().item() for d, _ in fake)
    assert loss.adversarial.item() == pytest.approx(expected_adv, rel=1e-5)
    assert loss.mel.item() == pytest.approx(expected_mel, rel=1e-5)
    d_loss = hifigan_discriminator_loss(discriminator, wav, wav_hat)
    expected_d = sum(((1 - r) ** 2).mean().item() + (f**2).mean().item()
                     for (r, _), (f, _) in zip(real, fake))
    assert d_loss.item() == pytest.approx(expected_d, rel=1e-5)
    # identical audio: no mel or feature-matching loss
    same = hifigan_generator_loss(discriminator, wav, wav.clone(), loss_mel, SMALL_LOSS)
    assert same.mel.item() == 0.0 and same.feature.item() == 0.0


def test_a_few_tiny_steps_reduce_the_mel_l1_on_one_clip():
    torch.manual_seed(9)
    t = torch.arange(8192) / 22050
    wav = (0.5 * torch.sin(2 * torch.pi * (300 * t + 2000 * t**2)) * torch.exp(-3 * t))[None, None]
    mel = FoleyMel(FoleyMelConfig(num_samples=None))(wav)  # the generator's input: 0-8 kHz
    assert mel.shape == (1, 80, 32)
    generator, discriminator = HiFiGANGenerator(hifigan_tiny()), build_discriminator(SMALL_LOSS)
    loss_mel = build_loss_mel(SMALL_LOSS)
    opt_g = torch.optim.AdamW(generator.parameters(), 2e-4, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(discriminator.parameters(), 2e-4, betas=(0.8, 0.99))
    mel_l1 = []
    for _ in range(10):
        wav_hat = generator(mel)
        d_loss = hifigan_discriminator_loss(discriminator, wav, wav_hat)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = hifigan_generator_loss(discriminator, wav, wav_hat, loss_mel, SMALL_LOSS)
        opt_g.zero_grad()
        g_loss.total.backward()
        opt_g.step()
        mel_l1.append(g_loss.mel.item())
    assert mel_l1[0] > 4.0
    assert mel_l1[-1] < 0.8 * mel_l1[0]
