"""Residual FSQ: equality with vector-quantize-pytorch, gradients, round trips, dropout, the Codec with FSQ.

vector-quantize-pytorch (1.34.1 here) is the reference where the two agree by design:
- its ``FSQ`` (``preserve_symmetry=False``) bounds, rounds and indexes as the paper and as our layer 0;
- decoding: the mixed-radix digits, the grid values and the sum of layers scaled by (L - 1)^-i equal its
  ``ResidualFSQ.get_output_from_indices`` once its layers are paper-bound ``FSQ``s and its scales (L - 1)^-i.
Where it differs, by design: its ``ResidualFSQ`` (since 1.2x) uses the symmetry-preserving bound of Parker et
al. 2024 with a hard clamp, soft-clamps the projected input and scales layer i by L^-i; older versions applied
the tanh bound at every layer to the residual of the *unbounded* projection, which cannot represent |z| above
about 1.2 however many layers follow. Ours bounds once and refines the bounded value on clamped uniform grids
(tested below: the error shrinks by (L - 1) per layer), with one straight-through gradient for all layers.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import overfit_losses
from torch import nn
from vector_quantize_pytorch import FSQ
from vector_quantize_pytorch import ResidualFSQ as ReferenceResidualFSQ

from funcodec_lite import Codec, CodecConfig, ConfigError, load_model_dir
from funcodec_lite.codec.loading import model_id
from funcodec_lite.inference.stream import StreamingEncoder
from funcodec_lite.quantization import QUANTIZER_KINDS, ResidualFSQ, RVQConfig, build_quantizer
from funcodec_lite.quantization.fsq import fsq_bound

LEVELS = [8, 5, 5, 5]


def _quantizer(dim: int = 16, n_q: int = 6, levels: list[int] | None = None, seed: int = 0,
               **kw) -> ResidualFSQ:
    torch.manual_seed(seed)
    return ResidualFSQ(RVQConfig(kind="fsq", dim=dim, n_q=n_q, levels=levels or LEVELS, **kw))


def _latent(batch: int = 3, dim: int = 16, frames: int = 40, seed: int = 0,
            gain: float = 2.0) -> torch.Tensor:
    return torch.randn(batch, dim, frames, generator=torch.Generator().manual_seed(seed)) * gain


def _tiny_fsq(n_q: int = 4, **quantizer) -> CodecConfig:
    return CodecConfig.from_dict({
        "sample_rate": 8000, "arch": "seanet", "domain": "time",
        "model": {"n_filters": 8, "ratios": [4, 2], "dimension": 8, "lstm": 0},
        "quantizer": {"kind": "fsq", "dim": 8, "n_q": n_q, "levels": LEVELS, **quantizer}})


@pytest.mark.parametrize("levels", [LEVELS, [7, 6, 5, 3]])
def test_one_layer_equals_vector_quantize_pytorch_fsq(levels):
    ours = _quantizer(n_q=1, levels=levels).eval()
    reference = FSQ(levels=levels, dim=16).eval()
    reference.project_in.load_state_dict(ours.project_in.state_dict())
    reference.project_out.load_state_dict(ours.project_out.state_dict())
    x = _latent()
    out = ours(x)
    expected, indices = reference(x.transpose(1, 2))
    assert torch.equal(out.codes[:, 0], indices.long())
    torch.testing.assert_close(out.quantized, expected.transpose(1, 2), atol=1e-6, rtol=1e-6)
    assert ours.codebook_size == reference.codebook_size == torch.tensor(levels).prod().item()


def test_layer_zero_and_decoding_equal_vector_quantize_pytorch_residual_fsq():
    ours = _quantizer(n_q=6).eval()
    x = _latent(batch=4, frames=64)
    codes = ours.encode(x)
    first = FSQ(levels=LEVELS, dim=16).eval()
    first.project_in.load_state_dict(ours.project_in.state_dict())
    assert torch.equal(codes[:, 0], first(x.transpose(1, 2))[1].long())
    reference = ReferenceResidualFSQ(levels=LEVELS, num_quantizers=6, dim=16, bound_hard_clamp=False).eval()
    reference.layers = nn.ModuleList(FSQ(levels=LEVELS, dim=len(LEVELS)) for _ in range(6))
    reference.scales = torch.stack([(torch.tensor(LEVELS) - 1).float() ** -i for i in range(6)])
    reference.project_out.load_state_dict(ours.project_out.state_dict())
    decoded = reference.get_output_from_indices(codes.permute(0, 2, 1))
    torch.testing.assert_close(ours.decode(codes), decoded.transpose(1, 2), atol=1e-6, rtol=1e-6)
    random_codes = torch.randint(0, 1000, (2, 6, 9), generator=torch.Generator().manual_seed(1))
    decoded = reference.get_output_from_indices(random_codes.permute(0, 2, 1))
    torch.testing.assert_close(ours.decode(random_codes), decoded.transpose(1, 2), atol=1e-6, rtol=1e-6)


def test_codes_are_the_reference_mixed_radix_digits_and_cover_every_level():
    ours = _quantizer(dim=4, n_q=1)
    reference = FSQ(levels=LEVELS)
    with torch.no_grad():  # identity projections: decode returns the grid point itself
        ours.project_out.weight.copy_(torch.eye(4))
        ours.project_out.bias.zero_()
    every = torch.arange(1000)
    grid = ours.decode(every.view(1, 1, -1))[0].T  # [1000, 4]
    torch.testing.assert_close(grid, reference.implicit_codebook, atol=0, rtol=0)
    assert len({tuple(row.tolist()) for row in grid}) == 1000
    # a wide input reaches every level of every channel; zero maps to the centre, code sum_j (L_j // 2) b_j
    z = torch.linspace(-8, 8, 4001).repeat(4, 1)[None]  # [1, 4, N] projected inputs
    with torch.no_grad():
        ours.project_in.weight.copy_(torch.eye(4))
        ours.project_in.bias.zero_()
    codes = ours.encode(z)[0, 0]
    digits = codes[:, None] // ours.basis % ours.levels
    assert [len(set(column.tolist())) for column in digits.T] == LEVELS
    assert ours.encode(torch.zeros(1, 4, 1)).item() == 4 + 2 * 8 + 2 * 40 + 2 * 200


@pytest.mark.parametrize("n_q", [1, 6])
def test_straight_through_gradient_is_that_of_the_bounded_projection_at_any_depth(n_q):
    fsq = _quantizer().train()
    x = _latent().requires_grad_()
    out = fsq(x, n_q=n_q)
    assert out.commit_loss.item() == 0.0 and out.commit_loss.dim() == 0
    out.quantized.pow(2).sum().backward()
    assert x.grad.abs().sum() > 0 and fsq.project_in.weight.grad.abs().sum() > 0
    # d/dz of project_out(bound(z) / h), the value's rounding passed straight through
    z = fsq.project_in(x.detach().transpose(1, 2)).detach().requires_grad_()
    smooth = fsq.project_out(fsq_bound(z, fsq.levels) / fsq.half_width)
    smooth.backward(2 * out.quantized.detach().transpose(1, 2))
    torch.testing.assert_close(x.grad, (z.grad @ fsq.project_in.weight).transpose(1, 2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decode_of_encode_equals_the_forward_output_exactly(dtype):
    fsq = _quantizer().eval().to(dtype)
    x = _latent(batch=2, frames=33).to(dtype)
    for n in range(1, 7):
        codes = fsq.encode(x, n)
        out = fsq(x, n)
        assert codes.shape == (2, n, 33) and 0 <= codes.min() and codes.max() < 1000
        assert torch.equal(codes, out.codes) and out.quantized.dtype == dtype
        assert torch.equal(fsq.decode(codes), out.quantized)
    errors = [(fsq.decode(fsq.encode(x, n)) - fsq(x, 6).quantized).pow(2).mean().item() for n in (1, 2, 4)]
    assert errors[0] > errors[1] > errors[2]  # each layer refines the previous ones


@pytest.mark.parametrize("gain", [0.3, 3.0])
def test_each_layer_shrinks_the_error_by_levels_minus_one_whatever_the_range(gain):
    fsq = _quantizer(dim=4, n_q=5)
    with torch.no_grad():  # identity projections: the layers' sum is the decoded latent
        for layer in (fsq.project_in, fsq.project_out):
            layer.weight.copy_(torch.eye(4))
            layer.bias.zero_()
    x = _latent(batch=2, dim=4, frames=500, gain=gain)
    target = fsq_bound(x.transpose(1, 2), fsq.levels) / fsq.half_width
    for n in range(1, 6):
        error = (fsq.decode(fsq.encode(x, n)).transpose(1, 2) - target).abs().amax((0, 1))
        bound = fsq.scale(n - 1, torch.float32) / (2 * fsq.half_width)  # half a step of the last layer
        assert (error <= bound * (1 + 1e-4)).all(), (n, error, bound)
        assert (error > bound / 4).all()  # and the grid is used: the bound is tight


def test_dropout_draws_n_q_from_the_choices_in_training_only():
    fsq = _quantizer(n_q=8, quantizer_dropout=True, dropout_choices=[1, 2, 4, 8]).train()
    x = _latent(frames=8)
    seen = {fsq(x).n_q for _ in range(40)}
    assert seen == {1, 2, 4, 8} and fsq.step.item() == 40
    out = fsq(x)
    assert out.codes.shape[1] == out.n_q and set(out.metrics) == {
        f"layer{i}/{name}" for i in range(out.n_q) for name in ("entropy", "perplexity", "usage")}
    assert fsq(x, n_q=3).n_q == 3  # a caller's n_q is honoured in training
    assert fsq.eval()(x).n_q == 8
    with pytest.raises(ValueError, match="dropout_choices"):
        _quantizer(n_q=4, dropout_choices=[1, 5])


def test_per_item_dropout_marks_dropped_layers_and_decodes_to_the_output():
    fsq = _quantizer(n_q=6, quantizer_dropout=True, dropout_per_item=0.5).train()
    x = _latent(batch=8, frames=5)
    out = fsq(x)
    dropped = (out.codes < 0).all(-1)  # [B, n_q]
    assert dropped.any() and not dropped[:, 0].any()
    assert torch.equal(out.codes < 0, dropped[..., None].expand_as(out.codes))
    assert torch.equal(fsq.decode(out.codes), out.quantized.detach())
    lengths = (~dropped).sum(1)
    for b in range(8):
        alone = fsq.eval()(x[b : b + 1], n_q=int(lengths[b])).quantized
        torch.testing.assert_close(out.quantized[b : b + 1], alone, atol=1e-6, rtol=1e-6)


def test_config_derives_and_checks_the_codebook_size():
    assert RVQConfig(kind="fsq", levels=LEVELS).codebook_size == 1000
    assert RVQConfig(kind="fsq", levels=LEVELS, codebook_size=1000).codebook_size == 1000
    assert RVQConfig().codebook_size == 1024 and RVQConfig().kind == "rvq"
    assert QUANTIZER_KINDS == ("rvq", "fsq")
    assert isinstance(build_quantizer(RVQConfig(kind="fsq", levels=LEVELS)), ResidualFSQ)
    base = _tiny_fsq().to_dict()
    for change, message in [({"codebook_size": 1024}, "prod"), ({"levels": [8, 2]}, ">= 3"),
                            ({"levels": None}, "levels"), ({"kind": "lfq"}, "kind"),
                            ({"kind": "rvq"}, "levels is an FSQ setting")]:
        data = {**base, "quantizer": {**base["quantizer"], **change}}
        with pytest.raises(ConfigError, match=message):
            CodecConfig.from_dict(data)


def test_bandwidth_counts_log2_of_prod_levels_bits():
    codec = Codec(_tiny_fsq(n_q=12))
    assert codec.codebook_size == 1000
    fsq = codec.quantizer
    assert fsq.n_q_for_bandwidth(6.0, 50.0) == 12 and fsq.n_q_for_bandwidth(1.0, 50.0) == 2
    assert codec.bandwidth(12) == pytest.approx(12 * 9.965784 * codec.frame_rate / 1000)


def test_codec_with_fsq_gets_the_encoder_gradient_and_learns():
    torch.manual_seed(0)
    codec = Codec(_tiny_fsq()).train()
    wav = torch.randn(2, 1, 800, generator=torch.Generator().manual_seed(1)) * 0.2
    out = codec(wav)
    out.wav.pow(2).mean().backward()
    first_conv = codec.encoder.layers[0].conv
    assert first_conv.parametrizations.weight.original1.grad.abs().sum() > 0
    torch.manual_seed(0)
    losses = overfit_losses(Codec(_tiny_fsq()).train(), steps=60, lr=1e-2)
    assert losses[-1] < 0.35 * losses[0], losses[::10]  # 0.342 -> 0.066 with seed 0


def test_codec_with_fsq_saves_and_loads_as_a_model_dir(tmp_path):
    torch.manual_seed(0)
    codec = Codec(_tiny_fsq(quantizer_dropout=True, dropout_choices=[1, 2, 4]))
    codec.train()(torch.randn(2, 1, 800) * 0.2)
    codec.eval().save_pretrained(tmp_path / "fsq", provenance={"steps": 1})
    loaded = load_model_dir(tmp_path / "fsq")
    assert isinstance(loaded.quantizer, ResidualFSQ) and loaded.config.quantizer == codec.config.quantizer
    assert loaded.quantizer.step.item() == 1
    assert {k for k in loaded.state_dict() if k.startswith("quantizer.")} == {
        "quantizer.project_in.weight", "quantizer.project_in.bias", "quantizer.project_out.weight",
        "quantizer.project_out.bias", "quantizer.step"}
    assert model_id(loaded) == model_id(Codec.from_pretrained(tmp_path / "fsq"))
    wav = torch.randn(1, 1, 1000, generator=torch.Generator().manual_seed(3)) * 0.2
    with torch.no_grad():
        codes = codec.encode(wav)
        assert torch.equal(loaded.encode(wav), codes)
        assert torch.equal(loaded.decode(codes), codec.decode(codes))


def test_streaming_tokenizer_and_semantic_paths_accept_fsq():
    from funcodec_lite import Tokenizer

    torch.manual_seed(0)
    config = _tiny_fsq()
    config.model.causal = True
    codec = Codec(config).eval()
    wav = torch.randn(1, 1, 1600, generator=torch.Generator().manual_seed(2)) * 0.2
    with torch.no_grad():
        whole = codec.encode(wav)
        with StreamingEncoder(codec) as stream:
            parts = [stream.push(wav[..., i : i + 240]) for i in range(0, 1600, 240)]
            parts.append(stream.flush())
    assert torch.equal(torch.cat(parts, -1), whole)
    vectors = Tokenizer(codec).embed(whole)
    assert torch.equal(vectors, codec.quantizer.decode(whole).transpose(1, 2))
    semantic = Codec(CodecConfig.from_dict({**_tiny_fsq().to_dict(), "semantic": {"semantic_dim": 5}}))
    feats = torch.randn(1, 7, 5)
    out = semantic.train()(wav, semantic=feats)
    assert out.wav.shape == wav.shape and out.codes.shape == (1, 4, 200)
