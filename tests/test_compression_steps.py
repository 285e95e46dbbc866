"""Wanda, RIA, LLM-Drop and GPTQ recipe steps (candidates/recipes/), checked by hand.

The 4x8 layer below sees two calibration tokens, so every input norm is an integer:
X = [[3,0,1,0,2,0,1,0], [4,1,0,2,0,1,0,3]]  ->  ||X_j||_2 = [5, 1, 1, 2, 2, 1, 1, 3].
"""

from __future__ import annotations

import math

import pytest
import torch

from candidates import recipes
from candidates.recipes import RecipeError

X = torch.tensor([[3, 0, 1, 0, 2, 0, 1, 0], [4, 1, 0, 2, 0, 1, 0, 3]], dtype=torch.float32)
NORMS = [5, 1, 1, 2, 2, 1, 1, 3]
W = torch.tensor([[1, 4, -3, 2.75, 0.5, -6, 2, 1.5],
                  [-2, 1, 1.5, -1, 3, 7, -4, 2.5],
                  [1, -1.5, 2, 2.25, -1.25, 3, 6, -0.25],
                  [3, 2, -1, 1.5, 2, -0.5, 1.25, 4]])
# Wanda |W_ij| * ||X_j||, by hand; every row's 8 scores are distinct.
WANDA = [[5, 4, 3, 5.5, 1, 6, 2, 4.5],
         [10, 1, 1.5, 2, 6, 7, 4, 7.5],
         [5, 1.5, 2, 4.5, 2.5, 3, 6, 0.75],
         [15, 2, 1, 3, 4, 0.5, 1.25, 12]]


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 4, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(W)

    def forward(self, x):
        return self.proj(x)


class Holder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([Block()])


def _prune(step_text: str) -> tuple[torch.Tensor, dict]:
    holder = Holder()

    def calibrate(part):  # the family's calibration pass: the model answers the two "requests"
        return [part.layers[0](X[i:i + 1]) for i in range(2)]

    (done,) = recipes.apply(holder, recipes.parse([step_text], {"llm": ""}), {"llm": ""}, calibrate)
    return holder.layers[0].proj.weight.detach(), done


def _zeroed(weight: torch.Tensor) -> list[list[int]]:
    return [[j for j in range(weight.shape[1]) if weight[i, j] == 0] for i in range(weight.shape[0])]


def test_wanda_scores_are_weight_magnitude_times_input_norm():
    from candidates.recipes.wanda import scores

    assert scores(W, torch.tensor(NORMS, dtype=torch.float64)).tolist() == WANDA


def test_wanda_unstructured_removes_the_four_lowest_scores_of_each_row():
    weight, done = _prune("wanda:llm:sparsity=0.5")
    # Row 0's lowest scores: 1 (j4), 2 (j6), 3 (j2), 4 (j1). Magnitude alone would drop j0
    # (|W|=1), which Wanda keeps: its input norm is 5.
    assert _zeroed(weight) == [[1, 2, 4, 6], [1, 2, 3, 6], [1, 2, 4, 7], [1, 2, 5, 6]]
    assert done["measured_sparsity"] == 0.5 and done["per_linear"]["layers.0.proj"]["zeros"] == 16
    assert done["storage"] == "dense" and "no memory and no time are saved" in done["saves"]
    assert done["calibration_samples"] == 2 and done["comparison_group"] == "output row"
    kept = weight != 0
    assert torch.equal(weight[kept], W[kept])  # no weight update: the kept weights are untouched


def test_wanda_2_of_4_keeps_the_two_highest_of_every_four():
    weight, done = _prune("wanda:llm:nm=2:4")
    # Row 0: (5, 4, 3, 5.5) keeps j0, j3; (1, 6, 2, 4.5) keeps j5, j7.
    assert _zeroed(weight) == [[1, 2, 4, 6], [1, 2, 4, 6], [1, 2, 4, 7], [1, 2, 5, 6]]
    assert done["nm_verified"] is True and done["per_linear"]["layers.0.proj"]["max_nonzeros_per_group"] == 2
    assert done["measured_sparsity"] == 0.5
    assert done["semi_structured_2_4"]["applied"] is False  # CPU: torch has no 2:4 kernel here
    assert "CUDA" in done["semi_structured_2_4"]["why"]


def test_ria_scores_by_hand():
    from candidates.recipes.ria import scores

    s = scores(W, torch.tensor(NORMS, dtype=torch.float64))
    # Row 0 sums to 20.75, column 0 to 7: (1/20.75 + 1/7) * 5**0.5; column 5 sums to 16.5.
    assert s[0, 0].item() == pytest.approx((1 / 20.75 + 1 / 7) * math.sqrt(5), rel=1e-6)
    assert s[1, 5].item() == pytest.approx((7 / 22 + 7 / 16.5) * 1, rel=1e-6)
    assert s[3, 7].item() == pytest.approx((4 / 15.25 + 4 / 8.25) * math.sqrt(3), rel=1e-6)


def test_ria_unstructured_compares_the_whole_matrix():
    weight, done = _prune("ria:llm:sparsity=0.5")
    # The 16 lowest of the 32 scores (the 16th is 0.4272 at (0,0), the 17th 0.4401 at (0,7)):
    # row 0 loses 3 weights, row 2 loses 5; the layer as a whole loses exactly half.
    assert _zeroed(weight) == [[0, 4, 6], [1, 2, 3], [1, 2, 4, 5, 7], [1, 2, 3, 5, 6]]
    assert done["measured_sparsity"] == 0.5 and done["comparison_group"] == "whole matrix"
    assert done["alpha"] == 0.5


def test_ria_2_of_4_by_hand():
    weight, done = _prune("ria:llm:nm=2:4")
    # Row 0: (0.427, 0.663, 0.545, 0.706) keeps j1, j3 (Wanda kept j0, j3 there).
    assert _zeroed(weight) == [[0, 2, 4, 6], [1, 3, 6, 7], [1, 2, 5, 7], [1, 2, 5, 6]]
    assert done["nm_verified"] is True


@pytest.mark.parametrize("step", ["wanda:llm", "wanda:llm:sparsity=1.5", "ria:llm:nm=4:4", "ria:llm:nm=2",
                                  "wanda:llm:sparsity=0.5,nm=2:4", "drop-attn:llm:n=0", "drop-mlp:llm:k=1",
                                  "gptq:llm:bits=3,group=128", "gptq:llm:bits=4"])
def test_bad_arguments_are_refused_before_loading(step):
    with pytest.raises(RecipeError, match=step.split(":")[0]):
        recipes.parse([step], {"llm": ""})


def test_steps_that_need_activations_ask_for_calibration():
    for step in ["wanda:llm:sparsity=0.5", "ria:llm:nm=2:4", "drop-attn:llm:n=1", "gptq:llm:bits=4,group=8"]:
        assert recipes.needs_calibration(recipes.parse([step], {"llm": ""}))
    assert not recipes.needs_calibration(recipes.parse(["int8-dynamic:llm", "prune:llm:drop=1"], {"llm": ""}))


def test_without_calibration_the_step_says_so():
    holder = Holder()
    with pytest.raises(ValueError, match="wanda:llm:sparsity=0.5: this family gives no calibration"):
        recipes.apply(holder, recipes.parse(["wanda:llm:sparsity=0.5"], {"llm": ""}), {"llm": ""})


# ------------------------------------------------------------------------------ LLM-Drop


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         initializer_range=0.5)  # sublayers that change the stream visibly
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("op, zeroed, removed", [
    ("drop-attn", "self_attn.o_proj", ["model.layers.1.attn"]),
    ("drop-mlp", "mlp.down_proj", ["model.layers.1.mlp"]),
])
def test_llm_drop_removes_the_sublayer_whose_output_equals_its_input(op, zeroed, removed):
    """Layer 1's sublayer is made to add nothing (its output projection zeroed): its output is
    its input, cosine similarity exactly 1, the highest; removing it must leave every greedy
    token as it was, KV cache included (the kept attentions renumbered)."""
    model = _tiny_llama()
    with torch.no_grad():
        model.get_submodule(f"model.layers.1.{zeroed}").weight.zero_()
    prompt = torch.tensor([[1, 5, 9, 3, 7]])
    expected = model.generate(prompt, max_new_tokens=8, do_sample=False)

    def calibrate(_part):
        with torch.inference_mode():
            return [model(prompt), model(prompt[:, :3])]

    (done,) = recipes.apply(model, recipes.parse([f"{op}:llm:n=1"], {"llm": ""}), {"llm": ""}, calibrate)
    assert done["removed"] == removed
    assert done["cosine_similarity"]["1"] == pytest.approx(1.0, abs=1e-6)
    assert max(v for k, v in done["cosine_similarity"].items() if k != "1") < 0.999
    layer = model.model.layers[1]
    gone = ("self_attn", "input_layernorm") if op == "drop-attn" else ("mlp", "post_attention_layernorm")
    assert not any(hasattr(layer, name) for name in gone) and done["weights_removed_bytes"] > 0
    assert torch.equal(model.generate(prompt, max_new_tokens=8, do_sample=False), expected)
    if op == "drop-attn":
        assert [m.self_attn.layer_idx for i, m in enumerate(model.model.layers) if i != 1] == [0, 1]


def test_llm_drop_keeps_one_attention():
    model = _tiny_llama()
    with pytest.raises(RecipeError, match="at least one must stay"):
        recipes.apply(model, recipes.parse(["drop-attn:llm:n=3"], {"llm": ""}), {"llm": ""},
                      lambda _p: [model(torch.tensor([[1, 2]]))])


# ------------------------------------------------------------------------------ GPTQ


def test_gptq_grid_by_hand_and_packing():
    from candidates.recipes.gptq import dequantize, pack, round_to_nearest, unpack

    # One row, two groups of 4, 2 bits (levels 0..3). Group 1: [0, .5, 1, 1.5] -> scale 0.5, zero 0,
    # codes 0..3 exact. Group 2: [-1, 0, 1, 2] -> scale 1, zero 1, codes [0, 1, 2, 3].
    w = torch.tensor([[0, 0.5, 1, 1.5, -1, 0, 1, 2]])
    codes, scales, zeros = round_to_nearest(w, 2, 4)
    assert codes.tolist() == [[0, 1, 2, 3, 0, 1, 2, 3]]
    assert scales.tolist() == [[0.5, 1.0]] and zeros.tolist() == [[0, 1]]
    assert torch.equal(dequantize(codes, scales, zeros, 4).float(), w)
    packed = pack(codes, 2)
    assert packed.tolist() == [[0b11100100, 0b11100100]] and torch.equal(unpack(packed, 2), codes)
    wide = torch.randint(0, 16, (3, 8), dtype=torch.uint8)
    assert pack(wide, 4).shape == (3, 4) and torch.equal(unpack(pack(wide, 4), 4), wide)


def test_gptq_equals_rounding_when_inputs_are_uncorrelated_and_beats_it_when_they_are():
    from candidates.recipes.gptq import _relative_output_error, dequantize, quantize, round_to_nearest

    torch.manual_seed(0)
    w = torch.randn(4, 8, dtype=torch.float64)
    # H = identity (damped by 1% of its mean diagonal: still diagonal): no error to feed forward.
    codes, scales, zeros = quantize(w, torch.eye(8, dtype=torch.float64), 4, 8)
    rtn = round_to_nearest(w, 4, 8)
    assert torch.equal(codes, rtn[0]) and torch.allclose(scales, rtn[1])
    # Strongly correlated inputs: GPTQ's error feedback lowers the output error on them.
    x = torch.randn(64, 2, dtype=torch.float64) @ torch.randn(2, 8, dtype=torch.float64)
    x += 0.05 * torch.randn(64, 8, dtype=torch.float64)
    h = x.T @ x / 64
    gptq = dequantize(*quantize(w, h, 2, 8), 8)
    plain = dequantize(*round_to_nearest(w, 2, 8), 8)
    assert _relative_output_error(gptq - w, w, h) < 0.5 * _relative_output_error(plain - w, w, h)


def test_gptq_step_replaces_linears_with_packed_ones():
    from candidates.recipes.gptq import GPTQLinear

    holder = Holder()
    dense = holder.layers[0].proj.weight.detach().clone()
    (done,) = recipes.apply(holder, recipes.parse(["gptq:llm:bits=4,group=4"], {"llm": ""}), {"llm": ""},
                            lambda part: [part.layers[0](X)])
    module = holder.layers[0].proj
    assert isinstance(module, GPTQLinear) and module.qweight.dtype == torch.uint8 and module.qweight.shape == (4, 4)
    assert done["bytes_after"] < done["bytes_before"] and done["calibration_samples"] == 1
    assert torch.allclose(module(X), X @ module.dequantized().T)
    assert (module.dequantized() - dense).abs().max() < 0.5  # 16 levels over each group's range


def test_calibration_sample_is_seeded_ordered_and_skips_unreadable():
    from harness.data.calibration import pick_calibration
    from harness.data.errors import AudioError

    samples = [f"s{i}" for i in range(20)]

    def read(sample):
        if sample == "s3":
            raise AudioError("unreadable")
        return sample.upper()

    picked = pick_calibration(samples, read)
    assert picked == pick_calibration(samples, read) and len(picked) == 4
    assert [s for s, _ in picked] == sorted((s for s, _ in picked), key=samples.index)
    assert all(a == s.upper() for s, a in picked) and "s3" not in [s for s, _ in picked]
    assert [s for s, _ in picked] != samples[:4] or [s for s, _ in pick_calibration(samples, read, seed=1)] != samples[:4]
    assert [s for s, _ in pick_calibration(samples[:2], read)] == ["s0", "s1"]


def test_all_applies_the_step_to_each_part_on_its_own():
    model = torch.nn.Module()
    model.first, model.second = Holder(), Holder()
    parts = {"a": "first", "b": "second"}

    def calibrate(part):
        return [part.layers[0](X)]

    (done,) = recipes.apply(model, recipes.parse(["wanda:all:sparsity=0.5"], parts), parts, calibrate)
    assert sorted(done["parts"]) == ["a", "b"] and all(p["measured_sparsity"] == 0.5 for p in done["parts"].values())
    assert _zeroed(model.second.layers[0].proj.weight) == [[1, 2, 4, 6], [1, 2, 3, 6], [1, 2, 4, 7], [1, 2, 5, 6]]
