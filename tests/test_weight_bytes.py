"""Weight bytes are counted as stored, for plain and quantized tensors of three libraries."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.measure.memory import tensor_bytes


def two_linears() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))


WEIGHTS = 2 * 256 * 512  # weight elements; biases: 512 + 256


def test_plain_fp32_and_bf16():
    model = two_linears()
    assert tensor_bytes(model) == (WEIGHTS + 768) * 4
    assert tensor_bytes(model.to(torch.bfloat16)) == (WEIGHTS + 768) * 2


def test_shared_tensors_count_once():
    model = two_linears()
    model.append(nn.Linear(256, 512))
    model[2].weight = model[0].weight
    assert tensor_bytes(model) == (WEIGHTS + 768 + 512) * 4


def _nf4_layer(double_quant: bool):
    bnb = pytest.importorskip("bitsandbytes")
    layer = bnb.nn.Linear4bit(256, 512, bias=False, quant_type="nf4", compress_statistics=double_quant)
    layer.load_state_dict(nn.Linear(256, 512, bias=False).state_dict())
    return layer.to("cpu")  # quantizes


def test_bitsandbytes_nf4_counts_packed_data_and_scales():
    packed = 256 * 512 // 2  # two 4-bit values per byte
    blocks = 256 * 512 // 64  # one absmax per 64-value block
    code = 16 * 4  # the NF4 code table, fp32
    assert tensor_bytes(_nf4_layer(double_quant=False)) == packed + blocks * 4 + code
    # double quantization: uint8 absmax + their own fp32 absmax per 256 + a 256-entry fp32 code
    assert tensor_bytes(_nf4_layer(double_quant=True)) == packed + blocks + (blocks // 256) * 4 + 256 * 4 + code


def test_torchao_int8_weight_only():
    pytest.importorskip("torchao")
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    model = two_linears()
    quantize_(model, Int8WeightOnlyConfig())
    counted = tensor_bytes(model)
    # int8 weights + per-row scales, fp32 biases: about a quarter of fp32, far from the 4 bytes/weight
    # that numel() * element_size() would claim for the subclass.
    assert WEIGHTS <= counted < WEIGHTS * 1.1 + 768 * 4 + 8 * 768


def test_quanto_int4():
    pytest.importorskip("optimum.quanto")
    from optimum.quanto import freeze, qint4, quantize

    model = two_linears()
    quantize(model, weights=qint4)
    freeze(model)
    counted = tensor_bytes(model)
    assert WEIGHTS / 2 <= counted < WEIGHTS * 0.75


def test_torch_ao_dynamic_int8_packed_params():
    model = torch.ao.quantization.quantize_dynamic(two_linears(), {nn.Linear}, dtype=torch.qint8)
    assert list(model.parameters()) == []  # all of it lives in packed params
    # int8 weights (1 byte each, per-tensor scale) + fp32 biases
    assert tensor_bytes(model) == WEIGHTS + 768 * 4
