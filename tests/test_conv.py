"""The fast convolution helpers give what torch's own functions give."""

import pytest
import torch
from torch.nn import functional as F

from funcodec_lite.modules.conv import conv_transpose1d, pad1d


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_pad1d_equals_f_pad(mode):
    generator = torch.Generator().manual_seed(0)
    for length in (3, 8, 40):
        for left in range(3):
            for right in range(3):
                x = torch.randn(2, 3, length, generator=generator)
                strided = x.transpose(1, 2).contiguous().transpose(1, 2)  # channels-last layout
                expected = F.pad(x, (left, right), mode=mode)
                assert torch.equal(pad1d(x, left, right, mode), expected)
                assert torch.equal(pad1d(strided, left, right, mode), expected)


def test_pad1d_reflects_short_inputs_like_encodec():
    x = torch.tensor([[[1.0, 2.0]]])
    # [1, 2] is extended to [1, 2, 0, 0], reflected by 3 on the left, and the zeros are cut off again
    assert pad1d(x, 3, 0).tolist() == [[[0.0, 0.0, 2.0, 1.0, 2.0]]]


def test_pad1d_without_padding_returns_input():
    x = torch.randn(1, 2, 5)
    assert pad1d(x, 0, 0) is x


@pytest.mark.parametrize("kernel,stride", [(16, 8), (4, 2), (7, 3), (2, 4), (5, 1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_transpose1d_equals_torch(kernel, stride, with_bias):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 50, generator=generator)
    weight = torch.randn(6, 5, kernel, generator=generator)
    bias = torch.randn(5, generator=generator) if with_bias else None
    expected = F.conv_transpose1d(x, weight, bias, stride)
    for block in (7, 2048):  # several blocks, and one
        torch.testing.assert_close(conv_transpose1d(x, weight, bias, stride, block), expected)


def test_conv_transpose1d_keeps_gradients():
    x = torch.randn(1, 4, 10, requires_grad=True)
    weight = torch.randn(4, 2, 8, requires_grad=True)
    conv_transpose1d(x, weight, None, 4).square().sum().backward()
    assert x.grad is not None and weight.grad is not None


def test_fold_weight_norm_under_no_grad_keeps_parameters():
    from funcodec_lite.modules.conv import StreamableConv1d, fold_weight_norm

    conv = StreamableConv1d(3, 4, 5, norm="weight_norm")
    x = torch.randn(1, 3, 20)
    before = conv(x)
    with torch.no_grad():
        assert fold_weight_norm(conv) == 1
    names = {name for name, _ in conv.named_parameters()}
    assert any(name.endswith("weight") for name in names) and len(names) == 2
    torch.testing.assert_close(conv(x), before, rtol=1e-6, atol=1e-6)


def test_wide_transposed_conv_runs_in_onednn():
    """512 input channels (EnCodec's first decoder layer) take oneDNN's kernel: bit-identical to F."""
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(1, 512, 40, generator=generator)
    weight = torch.randn(512, 8, 16, generator=generator)
    assert torch.equal(conv_transpose1d(x, weight, None, 8), F.conv_transpose1d(x, weight, None, 8))
