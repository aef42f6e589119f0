"""The shared rotary position embedding: both pairings against complex multiplication, and RoPE's
relative-position property."""

import math

import pytest
import torch

from funcodec_lite.modules.rotary import apply_rotary, rope_frequencies


def _angles(length: int, dim: int, offset: int = 0) -> torch.Tensor:
    positions = torch.arange(offset, offset + length, dtype=torch.float32)
    return positions[:, None] * rope_frequencies(dim, 10000.0)


def test_frequencies_are_max_period_to_the_minus_2i_over_d():
    expected = torch.tensor([10000.0 ** (-2 * i / 8) for i in range(4)])
    torch.testing.assert_close(rope_frequencies(8), expected, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(7)


@pytest.mark.parametrize("interleaved", [False, True])
def test_rotation_is_complex_multiplication(interleaved):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    angles = _angles(5, 8).double()
    if interleaved:  # channels (2i, 2i + 1) are one complex number
        z = torch.view_as_complex(x.unflatten(-1, (4, 2)).contiguous())
    else:  # channels (i, i + 4)
        z = torch.complex(x[..., :4], x[..., 4:])
    turned = z * torch.polar(torch.ones_like(angles), angles)
    expected = (torch.view_as_real(turned).flatten(-2) if interleaved
                else torch.cat([turned.real, turned.imag], dim=-1))
    torch.testing.assert_close(apply_rotary(x.float(), angles.float(), interleaved).double(), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("interleaved", [False, True])
def test_scores_depend_only_on_the_distance_between_positions(interleaved):
    torch.manual_seed(1)
    q, k = torch.randn(16), torch.randn(16)
    angles = _angles(40, 16)

    def score(m: int, n: int) -> float:
        qm = apply_rotary(q[None], angles[m:m + 1], interleaved)[0]
        kn = apply_rotary(k[None], angles[n:n + 1], interleaved)[0]
        return float(qm @ kn)

    assert score(3, 1) == pytest.approx(score(30, 28), abs=1e-4)
    assert score(7, 7) == pytest.approx(float(q @ k), abs=1e-5)  # same position: the plain product
    assert not math.isclose(score(3, 1), score(3, 2), abs_tol=1e-3)
    # the norm is kept, and the dtype
    half = apply_rotary(q[None].half(), angles[5:6], interleaved)
    assert half.dtype == torch.float16
    assert float(apply_rotary(q[None], angles[9:10], interleaved).norm()) == pytest.approx(float(q.norm()),
                                                                                         rel=1e-5)
