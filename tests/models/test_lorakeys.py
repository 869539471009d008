"""An LCM-LoRA told from its tensors alone (steady.models.lorakeys): tiny random-weight LoRA files
on a real UNet's layers, LCM-LoRA's layer set against the layouts a style LoRA or a LoCon has."""

from __future__ import annotations

import warnings

import pytest

from steady.config import settings
from steady.models.detect import read_safetensors_header
from steady.models.lorakeys import consistency_layout
from steady.params import GenerationRequest
from steady.request.check import check

LCM = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
       "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]  # fmt: skip
ATTENTION = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]


@pytest.fixture(scope="module")
def components():
    from tests.fixtures.random_model import make_tiny_components

    return make_tiny_components("sd1", seed=0)


def _lora(components, path, targets, rank=4, conv_rank=None, text=False, layout="kohya", metadata=None):
    """A random LoRA on the tiny SD 1 model's ``targets`` (convolutions at ``conv_rank``), saved."""
    import copy

    import torch
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    out = {}
    for part, targets_here in (("unet", targets), ("text_encoder", ["q_proj", "v_proj"] if text else [])):
        if not targets_here:
            continue
        module = copy.deepcopy(components[part])
        convs = {n.rsplit(".", 1)[-1]: conv_rank for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)}
        pattern = {k: v for k, v in convs.items() if v is not None}
        with warnings.catch_warnings():  # a rank for conv_in and conv_out, which LCM-LoRA leaves alone
            warnings.simplefilter("ignore")
            inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets_here, rank_pattern=pattern,
                                               init_lora_weights=False), module)  # fmt: skip
        for key, value in get_peft_model_state_dict(module).items():
            if layout == "diffusers":
                out[f"{part}.{key}"] = value.contiguous()
                continue
            name, kind = key.rsplit(".lora_", 1)
            prefix = ("lora_unet_" if part == "unet" else "lora_te_text_model_") + name.replace(".", "_")
            out[prefix + (".lora_down.weight" if kind.startswith("A") else ".lora_up.weight")] = value.contiguous()
            out[prefix + ".alpha"] = torch.tensor(float(rank))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path), metadata=metadata)
    return path


def test_lcm_loras_layer_set_is_told_from_its_tensors(components, tmp_path):
    def says(**kw) -> bool:
        path = _lora(components, tmp_path / "x.safetensors", **kw)
        return consistency_layout(read_safetensors_header(path))

    assert says(targets=LCM)
    assert says(targets=LCM, layout="diffusers")
    assert says(targets=LCM, rank=8, conv_rank=8)
    assert not says(targets=ATTENTION)  # kohya's default LoRA: transformer blocks only
    assert not says(targets=LCM, text=True)  # a text-encoder part: not the distillation's set
    assert not says(targets=LCM, rank=8, conv_rank=4)  # a LoCon: its convolutions at a lower rank
    assert not says(targets=[t for t in LCM if t != "time_emb_proj"])  # no time embedding
    assert not says(targets=LCM + ["conv_in"])  # a layer the distillation does not adapt
    assert not says(targets=LCM, metadata={"ss_network_module": "networks.lora"})  # kohya says what it trained


def test_a_lora_with_lcm_loras_layers_gets_the_few_step_settings(components, tmp_path, monkeypatch):
    from tests.fixtures.tiny_models import save_tiny_folder

    model = save_tiny_folder("sd1", tmp_path / "tiny-sd1")
    _lora(components, settings().lora_dir / "speedy.safetensors", targets=LCM)
    _lora(components, settings().lora_dir / "style.safetensors", targets=ATTENTION)
    resolved = check(GenerationRequest("a red circle <lora:speedy:1>", model=str(model)), settings())
    assert (resolved.request.steps, resolved.request.cfg_scale, resolved.request.sampler) == (4, 1.5, "LCM")
    [note] = [w for w in resolved.warnings() if w.startswith("defaults:")]
    assert "speedy.safetensors" in note and "its layers" in note
    plain = check(GenerationRequest("a red circle <lora:style:1>", model=str(model)), settings())
    assert (plain.request.steps, plain.request.sampler) == (20, "Euler a") and not plain.warnings()
