"""The explicit candidate contract and strict candidate files: typos are errors, never silent."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.candidate import HOOKS, Candidate, overrides
from harness.options import OptionsError, parse_options
from harness.registry import RegistryError, build, spec_from_toml
from harness.spec import CandidateSpec
from harness.types import Generation
from tests.conftest import bench, install_distribution


class Minimal(Candidate):
    tasks = frozenset({"asr"})

    def load(self, device):
        pass

    def generate(self, request, on_token):
        on_token()
        return Generation(text="x")


def test_required_methods_are_enforced():
    class NoGenerate(Candidate):
        def load(self, device):
            pass

    with pytest.raises(TypeError, match="generate"):
        NoGenerate()


def test_optional_hooks_have_defaults_and_overrides_tells_them_apart():
    c = Minimal()
    assert (c.weight_bytes(), c.weight_bytes_by_part(), c.decoder_weight_bytes()) == (None, None, None)
    assert c.needs_calibration() is False and c.stepped_decoder() is None and c.recipe_applied() is None
    assert not overrides(c, "prepare") and not overrides(c, "generate_batch")
    with pytest.raises(ValueError, match="not a candidate hook"):
        overrides(c, "weight_byte")
    assert {"prepare", "weight_bytes", "stepped_decoder", "generate_batch", "run_info"} <= set(HOOKS)


@pytest.mark.parametrize("typo, hook", [("weight_byte", "weight_bytes"), ("generate_batched", "generate_batch"),
                                        ("decoder_weights_bytes", "decoder_weight_bytes"), ("prefil", "prefill")])
def test_misspelt_hook_is_an_error_at_class_definition(typo, hook):
    with pytest.raises(TypeError, match=f"close to '{hook}'"):
        type("Typo", (Minimal,), {typo: lambda self: 1})


def test_generate_batch_default_answers_in_order():
    from harness.types import Request

    class Echo(Minimal):
        def generate(self, request, on_token):
            return Generation(text=request.sample_id)

    import numpy as np

    reqs = [Request(str(i), np.zeros(160, np.float32), "asr", "p", 4) for i in range(3)]
    assert [g.text for g in Echo().generate_batch(reqs)] == ["0", "1", "2"]


@dataclass(frozen=True)
class Opts:
    model_path: str | None = None
    beam_size: int = 1
    parts: dict[str, str] | None = None


def test_options_unknown_key_names_known_and_nearest():
    with pytest.raises(OptionsError) as err:
        parse_options(Opts, {"model_pth": "/x"}, "here")
    assert "'model_pth' (did you mean 'model_path'?)" in str(err.value)
    assert "known: beam_size, model_path, parts" in str(err.value)


def test_options_wrong_type_is_an_error():
    with pytest.raises(OptionsError, match="'beam_size' = 'two' should be an integer"):
        parse_options(Opts, {"beam_size": "two"}, "here")
    with pytest.raises(OptionsError, match="should be an integer"):
        parse_options(Opts, {"beam_size": True}, "here")
    assert parse_options(Opts, {"parts": {"llm": "model.llm"}}, "here").parts == {"llm": "model.llm"}


TYPO_FILE = """name = "typo"
family = "salmonn"
recipes = ["nf4:llm"]

[options]
model_pth = "/tmp/weights"
"""


def test_typo_file_is_refused_naming_every_typo(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(TYPO_FILE)
    with pytest.raises(RegistryError) as err:
        spec_from_toml(path)
    text = str(err.value)
    assert "'recipes' (did you mean 'recipe'?)" in text and "'model_pth' (did you mean 'model_path'?)" in text


def test_typo_file_runs_nothing(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(TYPO_FILE)
    out = bench("run", "-c", str(path), "--results", str(tmp_path / "results"))
    assert out.returncode != 0 and "did you mean 'recipe'" in out.stderr and "model_pth" in out.stderr
    assert not (tmp_path / "results").exists()  # not even a run folder


def test_recipe_on_a_family_without_recipes_is_refused():
    spec = CandidateSpec("fw", "faster-whisper", recipe=["nf4:all"])
    with pytest.raises(ValueError, match="recipes are not supported by family 'faster-whisper'"):
        build(spec)


NOT_A_SUBCLASS = '''
from harness.types import Generation


class Duck:
    tasks = frozenset({"asr"})

    def load(self, device):
        pass

    def generate(self, request, on_token):
        return Generation(text="quack")
'''


def test_plugin_that_does_not_subclass_is_refused(tmp_path):
    env = install_distribution(tmp_path, "lbplugin_duck", NOT_A_SUBCLASS, "[lalm_bench.candidates]\nduck = lbplugin_duck:Duck\n")
    out = bench("run", "-c", "duck", "--results", str(tmp_path / "r"), env=env)
    assert out.returncode != 0 and "does not subclass harness.candidate.Candidate" in out.stderr


SHADOW = '''
from harness.candidate import Candidate


class Fake(Candidate):
    tasks = frozenset({"asr"})

    def load(self, device):
        raise AssertionError("a plugin must not replace a built-in")

    def generate(self, request, on_token):
        raise AssertionError("a plugin must not replace a built-in")
'''


def test_plugins_cannot_replace_builtin_names_and_are_told(tmp_path):
    env = install_distribution(tmp_path, "lbplugin_shadow", SHADOW,
                               "[lalm_bench.candidates]\nbaseline = lbplugin_shadow:Fake\n\n"
                               "[lalm_bench.families]\nsalmonn = lbplugin_shadow:Fake\n")
    out = bench("candidates", env=env)
    assert out.returncode == 0
    assert "candidate 'baseline' from lbplugin-shadow" in out.stderr and "family 'salmonn' from lbplugin-shadow" in out.stderr
    assert "builtin:baseline.toml" in out.stdout
