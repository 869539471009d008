"""Per-model defaults and few-step recommendations: a defaults file beside a model, what a
checkpoint's or a LoRA's file says it is, filled in only where the request left a value out."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.numpy import load_file, save_file

from steady.config import settings
from steady.errors import ModelError
from steady.models.default import embedded_model_path
from steady.models.defaults import few_step_kind, model_defaults
from steady.params import GenerationRequest
from steady.request.check import check
from tests.fixtures.loras import save_shaped_lora, save_tiny_lora


@pytest.fixture(scope="module")
def sd1_folder(tmp_path_factory):
    from tests.fixtures.tiny_models import save_tiny_folder

    return save_tiny_folder("sd1", tmp_path_factory.mktemp("models") / "tiny-sd1")


def with_metadata(path, metadata):
    tensors = load_file(path)
    save_file(tensors, path, metadata=metadata)
    return path


def test_the_embedded_models_defaults_ship_with_its_weights():
    """CFG 5 (the scale it was trained at), 20 steps, Euler a: from weights/defaults.toml, with no note."""
    assert (embedded_model_path() / "defaults.toml").is_file()
    resolved = check(GenerationRequest("a red circle"), settings())
    r = resolved.request
    assert (r.steps, r.cfg_scale, r.sampler) == (20, 5.0, "Euler a")
    assert not resolved.warnings()


def test_a_defaults_file_beside_a_checkpoint_fills_only_what_is_left_out(sd1_folder, tmp_path):
    model = tmp_path / "mine"
    shutil.copytree(sd1_folder, model)
    (tmp_path / "mine.defaults.toml").write_text('steps = 6\ncfg_scale = 3.5\nsampler = "DPM++ 2M"\n'
                                                 'schedule_type = "Karras"\nwidth = 48\n')  # fmt: skip
    resolved = check(GenerationRequest("a red circle", model=str(model)), settings())
    r = resolved.request
    assert (r.steps, r.cfg_scale, r.sampler, r.width, r.height) == (6, 3.5, "DPM++ 2M Karras", 48, 64)
    assert any("steps 6" in w and "mine.defaults.toml" in w for w in resolved.warnings())
    mine = check(GenerationRequest("a red circle", model=str(model), steps=9, sampler="Euler", cfg_scale=7),
                 settings()).request  # fmt: skip
    assert (mine.steps, mine.sampler, mine.cfg_scale, mine.width) == (9, "Euler", 7.0, 48)
    # No file: A1111's defaults and the model's native size.
    plain = check(GenerationRequest("a red circle", model=str(sd1_folder)), settings()).request
    assert (plain.steps, plain.cfg_scale, plain.sampler, plain.width) == (20, 7.0, "Euler a", 64)


@pytest.mark.parametrize("text,argument", [("steps = 0", "steps"), ('sampler = "Bogus"', "sampler"),
                                            ("colour = 1", "colour"), ("steps = ", "cannot read")])  # fmt: skip
def test_a_bad_defaults_file_is_refused_naming_the_file_and_key(sd1_folder, tmp_path, text, argument):
    model = tmp_path / "bad"
    shutil.copytree(sd1_folder, model)
    (model / "defaults.toml").write_text(text + "\n")
    with pytest.raises(ModelError, match=argument) as caught:
        check(GenerationRequest("a red circle", model=str(model)), settings())
    assert caught.value.value == str(model / "defaults.toml")


def test_a_few_step_lora_in_the_prompt_recommends_its_settings(sd1_folder):
    """An LCM-LoRA (its modelspec title says so) sets steps, CFG and sampler the user left out, and
    says so in the run's warnings; what the user gave stays."""
    lora = with_metadata(save_tiny_lora("sd1", settings().lora_dir / "fast.safetensors", parts=("unet",)),
                         {"modelspec.title": "LCM-LoRA for tiny"})  # fmt: skip
    resolved = check(GenerationRequest("a red circle <lora:fast:1>", model=str(sd1_folder)), settings())
    r = resolved.request
    assert (r.steps, r.cfg_scale, r.sampler) == (4, 1.5, "LCM")
    [note] = [w for w in resolved.warnings() if w.startswith("defaults:")]
    assert "LCM" in note and "fast.safetensors" in note
    assert resolved.image_params(0).extra["warnings"] == resolved.warnings()  # every image records it
    given = check(GenerationRequest("a red circle <lora:fast:1>", model=str(sd1_folder), cfg_scale=2.0,
                                    sampler="Euler a", schedule_type="SGM Uniform"), settings()).request  # fmt: skip
    assert (given.steps, given.cfg_scale, given.sampler) == (4, 2.0, "Euler a SGM Uniform")
    # The same file without the metadata is an ordinary LoRA: no recommendation.
    with_metadata(lora, {})
    plain = check(GenerationRequest("a red circle <lora:fast:1>", model=str(sd1_folder)), settings())
    assert (plain.request.steps, plain.request.sampler) == (20, "Euler a") and not plain.warnings()


def test_what_files_say_they_are(tmp_path, sd1_folder):
    lightning = model_defaults(save_shaped_lora(tmp_path / "sdxl_lightning_8step_lora.safetensors", "sdxl"))
    assert (lightning.kind, lightning.steps, lightning.cfg_scale, lightning.sampler) == (
        "Lightning", 8, 1.0, "Euler SGM Uniform")
    hyper = model_defaults(save_shaped_lora(tmp_path / "x.safetensors", "sd1",
                                            metadata={"ss_output_name": "Hyper-SD15-12steps-CFG-lora"}))  # fmt: skip
    assert (hyper.kind, hyper.steps, hyper.cfg_scale) == ("Hyper-SD", 12, 5.0)
    turbo = model_defaults(save_shaped_lora(tmp_path / "y.safetensors", "sd1", metadata={"modelspec.title": "SD Turbo"}))
    assert (turbo.kind, turbo.sampler) == ("Turbo", "Euler a SGM Uniform")
    explicit = model_defaults(save_shaped_lora(tmp_path / "z.safetensors", "sd1",
                                               metadata={"steady.defaults": json.dumps({"steps": 3, "sampler": "tcd"})}))
    assert (explicit.steps, explicit.sampler, explicit.kind) == (3, "TCD", "")
    assert model_defaults(save_shaped_lora(tmp_path / "portrait.safetensors", "sd1")) is None
    assert few_step_kind("clcm blocks") == "" and few_step_kind("my_LCM_v2") == "LCM"
    # A diffusers folder sampled by LCMScheduler is an LCM model.
    lcm = tmp_path / "lcm-folder"
    shutil.copytree(sd1_folder, lcm)
    config = json.loads((lcm / "scheduler" / "scheduler_config.json").read_text())
    (lcm / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "_class_name": "LCMScheduler"}))
    assert (model_defaults(lcm).kind, model_defaults(lcm).steps) == ("LCM", 4)
