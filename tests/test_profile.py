"""Tests for the parameter counter, the FLOP counter and the markdown table helper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from funcodec_lite.utils.profile import (
    ModelProfile,
    count_flops,
    count_parameters,
    flops_per_second,
    profile_model,
    profile_table,
)


def test_count_parameters_matches_hand_count() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Conv1d(4, 5, 3), nn.BatchNorm1d(5))
    # Linear 3·4 + 4 = 16; Conv1d 4·5·3 + 5 = 65; BatchNorm weight + bias 10 (running stats are buffers).
    assert count_parameters(model) == 16 + 65 + 10
    model[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 65 + 10
    assert count_parameters(model) == 91


def test_weight_norm_counts_g_and_v() -> None:
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 6, 3))
    assert count_parameters(conv) == 4 * 6 * 3 + 6 + 6  # v, bias, g (one per output channel)


@pytest.mark.parametrize(("c_in", "c_out", "k", "stride", "length"), [(3, 5, 7, 1, 20), (8, 16, 4, 2, 33)])
def test_conv1d_flops_closed_form(c_in: int, c_out: int, k: int, stride: int, length: int) -> None:
    conv = nn.Conv1d(c_in, c_out, k, stride=stride)
    x = torch.randn(1, c_in, length)
    t_out = (length - k) // stride + 1
    assert count_flops(conv, x) == 2 * c_in * c_out * k * t_out
    assert flops_per_second(conv, x, seconds_of_audio=0.5) == pytest.approx(4 * c_in * c_out * k * t_out)


def test_grouped_and_transposed_conv_flops() -> None:
    grouped = nn.Conv2d(8, 8, (3, 3), padding=1, groups=4)
    assert count_flops(grouped, torch.randn(1, 8, 5, 6)) == 2 * 8 * 2 * 9 * 5 * 6
    up = nn.ConvTranspose1d(4, 6, 4, stride=2)
    # every input sample is multiplied by the whole C_out × K kernel: 2 · C_in · C_out · K · T_in
    assert count_flops(up, torch.randn(1, 4, 10)) == 2 * 4 * 6 * 4 * 10


def test_lstm_flops_are_counted() -> None:
    lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)
    steps = 10
    # per step and layer: 4 gates × hidden × (input + hidden) multiply-accumulates
    expected = 2 * steps * (4 * 32 * (16 + 32) + 4 * 32 * (32 + 32))
    assert count_flops(lstm, torch.randn(1, steps, 16)) == expected


def test_elementwise_ops_cost_nothing_and_tuple_inputs_unpack() -> None:
    assert count_flops(torch.nn.functional.elu, torch.randn(100, 100)) == 0
    assert count_flops(torch.matmul, (torch.randn(3, 4), torch.randn(4, 5))) == 2 * 3 * 4 * 5
    with pytest.raises(ValueError):
        flops_per_second(torch.matmul, (torch.randn(2, 2), torch.randn(2, 2)), seconds_of_audio=0.0)


def test_profile_table_renders_rows_and_extra_columns() -> None:
    conv = nn.Conv1d(1, 2, 3)
    prof = profile_model(conv, torch.randn(1, 1, 1002), seconds_of_audio=1.0)
    assert prof == ModelProfile(params=8, flops_per_second=2 * 1 * 2 * 3 * 1000)
    big = ModelProfile(params=16_218_598, flops_per_second=5.917e9)
    table = profile_table({"conv": prof, "big": big, "paper": {"params (M)": "14.85", "note": "ds320"}})
    lines = table.splitlines()
    assert lines[0] == "| model | params | params (M) | GFLOPs / s audio | note |"
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| conv | 8 | 0.00 | 0.00 |  |"
    assert lines[3] == "| big | 16,218,598 | 16.22 | 5.92 |  |"
    assert lines[4] == "| paper |  | 14.85 |  | ds320 |"
