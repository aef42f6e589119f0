"""The Tokenizer API: batches equal items coded alone, decode, embed, codebook selection, loading."""

import pytest
import torch
from tiny_models import make_codec, save_codec, speechlike, tiny_config

from funcodec_lite import Codec, Tokenizer
from funcodec_lite.audio import resample
from funcodec_lite.codec.loading import DEFAULT_MODEL_ENV, ModelError


@pytest.fixture(scope="module", params=["noncausal_groupnorm_lstm", "causal"])
def tokenizer(request):
    if request.param == "causal":
        config = tiny_config(causal=True, lstm=1)
    else:
        config = tiny_config(norm="time_group_norm", lstm=1)
    return Tokenizer(make_codec(config))


@pytest.fixture(scope="module")
def clips():
    lengths = [4000, 2347, 4000, 17, 0, 3001]
    return [speechlike(n / 16000, 16000, seed=i)[0] if n else torch.zeros(0) for i, n in enumerate(lengths)]


def _alone(tokenizer, clip, rate=16000):
    return tokenizer.encode([clip], rate).codes[0]


def test_padded_batch_equals_items_alone(tokenizer, clips):
    padded = torch.zeros(len(clips), 4000)
    for i, clip in enumerate(clips):
        padded[i, : clip.numel()] = clip
    lengths = torch.tensor([clip.numel() for clip in clips])
    codes, frames = tokenizer.encode(padded, 16000, lengths=lengths)
    assert frames.tolist() == [250, 147, 250, 2, 0, 188] and codes.shape == (6, 4, 250)
    for i, clip in enumerate(clips):
        alone = _alone(tokenizer, clip)
        assert torch.equal(codes[i, :, : frames[i]], alone[:, : frames[i]])
        assert (codes[i, :, frames[i]:] == 0).all()  # padding value
    # a list of 1-D tensors gives the same
    listed = tokenizer.encode(clips, 16000)
    assert torch.equal(listed.codes, codes) and torch.equal(listed.lengths, frames)
    # the batch is deterministic
    assert torch.equal(tokenizer.encode(padded, 16000, lengths=lengths).codes, codes)


def test_one_padded_pass_differs_where_padding_is_seen(clips):
    """exact=False: a conv-only model changes only the last frames of padded items (their receptive
    field reaches the padding); with GroupNorm the padding changes the statistics of every frame."""
    items = [c for c in clips if c.numel() > 100]  # 4000, 2347, 4000, 3001 samples
    padded = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    lengths = [c.numel() for c in items]
    changed = {}
    for name, config in (("conv", tiny_config()), ("groupnorm", tiny_config(norm="time_group_norm", lstm=1))):
        tokenizer = Tokenizer(make_codec(config))
        exact = tokenizer.encode(padded, 16000, lengths=lengths)
        fast = tokenizer.encode(padded, 16000, lengths=lengths, exact=False)
        assert torch.equal(fast.lengths, exact.lengths)
        differ = (fast.codes != exact.codes).any(dim=1)  # [B, N]
        changed[name] = [differ[i, :n].nonzero().flatten().tolist() for i, n in enumerate(exact.lengths)]
    assert changed["conv"][0] == changed["conv"][2] == []  # full-length items are untouched
    assert changed["conv"][1] == [143, 145, 146] and changed["conv"][3] == [184, 185, 186, 187]
    assert changed["groupnorm"][0] == changed["groupnorm"][2] == []
    assert len(changed["groupnorm"][1]) > 0.5 * 147 and len(changed["groupnorm"][3]) > 0.5 * 188


def test_resampled_input_matches_resampling_yourself(tokenizer, clips):
    clip = clips[1]
    at_44k = resample(clip, 16000, 44100)
    codes, frames = tokenizer.encode([at_44k, at_44k[:1000]], 44100)
    expected = _alone(tokenizer, resample(at_44k, 44100, 16000))
    # 6469 samples at 44.1 kHz are ceil(6469 · 16000 / 44100) = 2348 at 16 kHz, ceil(2348 / 16) = 147 frames;
    # 1000 samples are 363 at 16 kHz, 23 frames (hop 16)
    assert at_44k.numel() == 6469 and expected.shape[-1] == 147
    assert frames.tolist() == [147, 23] and codes.shape[-1] == 147
    assert [tokenizer.num_frames(6469, 44100), tokenizer.num_frames(1000, 44100)] == [147, 23]
    assert torch.equal(codes[0, :, : frames[0]], expected)


def test_decode_and_embed(tokenizer, clips):
    codes, frames = tokenizer.encode(clips[:4], 16000)
    wav, samples = tokenizer.decode(codes, frames)
    assert wav.shape == (4, 1, 250 * 16) and samples.tolist() == [f * 16 for f in frames.tolist()]
    alone = tokenizer.codec.decode(codes[1:2, :, : frames[1]])
    torch.testing.assert_close(wav[1:2, :, : samples[1]], alone, atol=1e-5, rtol=1e-4)
    assert (wav[1, :, samples[1]:] == 0).all()
    embedded = tokenizer.embed(codes)
    assert embedded.shape == (4, 250, tokenizer.embedding_dim) == (4, 250, 8)
    books = [layer.embed for layer in tokenizer.codec.quantizer.layers]
    manual = sum(books[q][codes[2, q, 7]] for q in range(4))
    torch.testing.assert_close(embedded[2, 7], manual)
    assert embedded.requires_grad is False


def test_num_codebooks_and_properties(tokenizer, clips):
    assert (tokenizer.sample_rate, tokenizer.frame_rate, tokenizer.codebook_size) == (16000, 1000.0, 32)
    assert tokenizer.num_codebooks == tokenizer.total_codebooks == 4
    all_codes = tokenizer.encode(clips[:1], 16000).codes
    tokenizer.set_num_codebooks(2)
    try:
        two = tokenizer.encode(clips[:1], 16000).codes
        assert two.shape[1] == 2 and torch.equal(two, all_codes[:, :2])
        assert tokenizer.decode(two).wav.shape == (1, 1, 4000)
        with pytest.raises(ValueError, match="1..4"):
            tokenizer.set_num_codebooks(5)
    finally:
        tokenizer.set_num_codebooks(4)


def test_bad_inputs_are_refused(tokenizer):
    with pytest.raises(ValueError, match="1-channel"):
        tokenizer.encode(torch.zeros(2, 2, 100), 16000)
    with pytest.raises(ValueError, match="NaN"):
        tokenizer.encode([torch.tensor([0.0, float("nan")])], 16000)
    with pytest.raises(ValueError, match="lengths"):
        tokenizer.encode(torch.zeros(2, 100), 16000, lengths=[100])
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.decode(torch.full((1, 2, 5), 32))
    with pytest.raises(ValueError, match="codes"):
        tokenizer.decode(torch.zeros(1, 5, 5, dtype=torch.long))


def test_from_pretrained_and_default(tmp_path, monkeypatch):
    directory = save_codec(tmp_path / "m", tiny_config())
    loaded = Tokenizer.from_pretrained(directory)
    assert loaded.model_id == Tokenizer(make_codec(tiny_config())).model_id
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(directory))
    assert Tokenizer.from_pretrained().model_id == loaded.model_id
    assert Tokenizer.from_pretrained("default").to("cpu").device.type == "cpu"
    monkeypatch.setenv(DEFAULT_MODEL_ENV, str(tmp_path / "none"))
    with pytest.raises(ModelError, match="no default model is installed"):
        Tokenizer.from_pretrained()
    with pytest.raises(ValueError, match="semantic"):
        Tokenizer(Codec(_semantic_config()))


def _semantic_config():
    config = tiny_config()
    data = config.to_dict()
    data["semantic"] = {"mode": "add", "vocab_size": 4}
    return type(config).from_dict(data)
