"""Recipe parsing and application on real tiny transformers models."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from candidates import recipes
from candidates.recipes import RecipeError
from harness.measure.memory import tensor_bytes

PARTS = {"llm": "llm", "encoder": "audio_encoder", "adapter": "window_qformer"}


def tiny_llama(layers: int = 6) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("recipe, message", [
    (["fp64"], "unknown recipe step 'fp64'"),
    (["nf4:decoder"], "unknown part 'decoder'; this family has llm, encoder, adapter"),
    (["nf4:llm", "int8:encoder"], "only one bitsandbytes step"),
    (["bf16", "int8-dynamic:llm"], "cannot be combined with bf16"),
])
def test_bad_recipes_are_refused_with_the_step_named(recipe, message):
    with pytest.raises(RecipeError, match=message):
        recipes.parse(recipe, PARTS)


def test_bitsandbytes_skips_the_other_parts_by_dotted_path():
    steps = recipes.parse(["bf16", "nf4:encoder"], PARTS)
    kwargs = recipes.load_kwargs(steps, PARTS, "cpu", keep=["lm_head"])
    config = kwargs["quantization_config"]
    assert kwargs["dtype"] == torch.bfloat16 and config.bnb_4bit_quant_type == "nf4"
    assert config.llm_int8_skip_modules == ["llm", "window_qformer", "lm_head"]
    assert recipes.load_kwargs([], PARTS, "cpu") == {"dtype": torch.float32}
    assert recipes.load_kwargs([], PARTS, "cuda") == {"dtype": torch.bfloat16}


def test_fixed_prune_drops_the_deep_block_and_still_generates():
    model = tiny_llama(6)
    steps = recipes.parse(["prune:llm:drop=2"], {"llm": "llm"})
    holder = torch.nn.Module()
    holder.llm = model
    (done,) = recipes.apply(holder, steps, {"llm": "llm"})
    assert done["dropped_layers"] == [3, 4] and done["layers_after"] == 4
    assert len(model.model.layers) == 4 and model.config.num_hidden_layers == 4
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2, 3]
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 8)  # the KV cache works with the re-indexed layers


def test_auto_prune_picks_the_most_similar_block():
    # 5 layers, hidden states h0..h5 for one sample; h2 -> h4 barely changes, so the 2-layer block
    # starting at 2 (layers 2 and 3) is the most redundant.
    base = torch.eye(8)
    h = [base[0], base[1], base[2], base[2] + 0.01 * base[3], base[2] + 0.02 * base[4], base[5]]
    hidden = [tuple(x.view(1, 1, 8) for x in h)]
    start, distances = recipes.most_similar_block(hidden, 2)
    assert start == 2 and len(distances) == 3  # blocks at 0, 1, 2 (none includes the last layer)
    assert distances[0] == pytest.approx(0.5) and distances[2] < 0.02


def test_int8_dynamic_on_a_part_shrinks_its_weights():
    holder = torch.nn.Module()
    holder.llm = tiny_llama(2)
    before = tensor_bytes(holder)
    recipes.apply(holder, recipes.parse(["int8-dynamic:llm"], {"llm": "llm"}), {"llm": "llm"})
    assert tensor_bytes(holder) < before * 0.6
    assert holder.llm(torch.tensor([[1, 2]])).logits.shape == (1, 2, 128)


def test_prune_bounds():
    holder = torch.nn.Module()
    holder.llm = tiny_llama(3)
    with pytest.raises(RecipeError, match="can drop 1..1 of 3"):
        recipes.apply(holder, recipes.parse(["prune:llm:drop=2"], {"llm": "llm"}), {"llm": "llm"})
    with pytest.raises(RecipeError, match="drop=N or drop=auto:N"):
        recipes.apply(holder, recipes.parse(["prune:llm:drop=x"], {"llm": "llm"}), {"llm": "llm"})


# --- every recipe on the tiny SALMONN-style model, loaded in this process -------------------------

def _load_salmonn(recipe: list[str]):
    from candidates.families.salmonn import SalmonnCandidate
    from harness.spec import CandidateSpec

    candidate = SalmonnCandidate(CandidateSpec(name="t", family="salmonn", recipe=recipe))
    candidate.prepare()
    return candidate


@pytest.fixture(scope="module")
def salmonn_fp32():
    candidate = _load_salmonn([])
    candidate.load("cpu")
    return candidate


def _part_state(candidate, part_path):
    return {k: v.detach().clone() for k, v in recipes.module_at(candidate.model, part_path).state_dict().items()}


@pytest.mark.parametrize("recipe, part, max_ratio", [
    (["nf4:llm"], "llm", 0.2),
    (["int8:llm"], "llm", 0.3),
    (["int8-dynamic:llm"], "llm", 0.3),
    (["torchao-int8:llm"], "llm", 0.3),
    (["prune:llm:drop=2"], "llm", 0.8),
    (["nf4:encoder"], "encoder", 0.4),  # convolutions and position embeddings stay fp32
])
def test_each_recipe_shrinks_its_part_only(salmonn_fp32, recipe, part, max_ratio):
    if recipe[0].startswith("torchao"):
        pytest.importorskip("torchao")
    from candidates.families.salmonn import PARTS

    base = salmonn_fp32.weight_bytes_by_part()
    candidate = _load_salmonn(recipe)
    candidate.load("cpu")
    sizes = candidate.weight_bytes_by_part()
    assert sizes[part] < max_ratio * base[part]
    for other, path in PARTS.items():
        if other == part:
            continue
        assert sizes[other] == base[other]
        before, after = _part_state(salmonn_fp32, path), _part_state(candidate, path)
        assert all(torch.equal(before[k], after[k]) for k in before), f"{recipe}: {other} changed"
    assert candidate.applied[0]["step"] == recipe[0]
    request = _demo_request()
    ticks = []
    generation = candidate.generate(request, lambda count=1: ticks.append(count))
    assert sum(ticks) == generation.n_tokens > 0


def test_bf16_halves_every_float_part(salmonn_fp32):
    candidate = _load_salmonn(["bf16"])
    candidate.load("cpu")
    base, sizes = salmonn_fp32.weight_bytes_by_part(), candidate.weight_bytes_by_part()
    # all weights halve; only the LLM's rotary inv_freq buffers stay fp32 (a few hundred bytes)
    assert all(abs(sizes[k] - base[k] / 2) <= 1024 for k in ("llm", "encoder", "adapter"))


def _demo_request():
    from harness.data.annotation import load_annotation_json
    from harness.data.audio import load_audio
    from harness.suites import SUITES
    from harness.types import Request

    samples, _ = load_annotation_json(SUITES["asr"].demo_file)
    audio, _ = load_audio(samples[0].audio_path)
    return Request(samples[0].sample_id, audio, "asr", SUITES["asr"].prompt, 8)


def test_auto_prune_finds_layers_built_to_do_nothing():
    # Layers 2 and 3 have zero output projections, so each passes its input through unchanged
    # (the residual stream): the block [2, 3] has angular distance 0 and must be the one dropped.
    model = tiny_llama(6)
    with torch.no_grad():
        for i in (2, 3):
            model.model.layers[i].self_attn.o_proj.weight.zero_()
            model.model.layers[i].mlp.down_proj.weight.zero_()
    holder = torch.nn.Module()
    holder.llm = model
    inputs = [torch.randint(0, 128, (1, 12), generator=torch.Generator().manual_seed(i)) for i in range(3)]

    def calibrate(llm):
        with torch.no_grad():
            return [llm(input_ids=x, output_hidden_states=True).hidden_states for x in inputs]

    (done,) = recipes.apply(holder, recipes.parse(["prune:llm:drop=auto:2"], {"llm": "llm"}), {"llm": "llm"}, calibrate)
    assert done["dropped_layers"] == [2, 3]
    assert done["angular_distances"][2] == pytest.approx(0.0, abs=1e-3)
    assert min(d for i, d in enumerate(done["angular_distances"]) if i != 2) > 0.01


def test_compile_uses_a_static_cache_for_generating_parts_and_torch_compile_otherwise():
    model = tiny_llama(2)
    holder = torch.nn.Module()
    holder.llm = model
    holder.head = torch.nn.Linear(4, 4)
    parts = {"llm": "llm", "head": "head"}
    done = recipes.apply(holder, recipes.parse(["compile:llm", "compile:head"], parts), parts)
    assert model.generation_config.cache_implementation == "static" and "static KV cache" in done[0]["note"]
    assert "torch.compile" in done[1]["note"] and holder.head.forward is not torch.nn.Linear.forward
