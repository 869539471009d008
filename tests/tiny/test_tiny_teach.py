"""Teaching the embedded model (steady.tiny.teach): the smoke run writes a kohya-layout LoRA that
diffusers' loader applies in full, and the shipped LoRA is found by name and draws its star.

Run:  pytest tests/tiny/test_tiny_teach.py -q -s
"""

from __future__ import annotations

import pytest

from steady.models.default import embedded_model_path
from steady.models.loras import shipped_lora_dir



def _pipe():
    import torch
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(embedded_model_path(), torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)  # fmt: skip


def _adapted_modules(pipe, adapter: str) -> int:
    return sum(1 for part in (pipe.unet, pipe.text_encoder) for _, m in part.named_modules()
               if adapter in getattr(m, "lora_A", {}))  # fmt: skip


def test_the_quick_lora_is_a_kohya_file_that_diffusers_applies_in_full(tmp_path) -> None:
    from safetensors import safe_open

    from steady.models.loras import inspect_lora
    from steady.tiny.teach import main

    out = tmp_path / "quick.safetensors"
    assert main(["lora", "--out", str(out), "--quick", "--name", "quick-star"]) == 0
    with safe_open(str(out), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert keys and all(k.startswith(("lora_unet_", "lora_te_")) for k in keys)
    modules = {k.split(".")[0] for k in keys}
    assert keys and len(keys) == 3 * len(modules)  # .lora_down.weight, .lora_up.weight, .alpha each
    assert meta["ss_output_name"] == "quick-star" and meta["ss_network_dim"] == "16"
    info = inspect_lora(out)
    assert (info.layout, info.kind, info.parts) == ("kohya", "LoCon", ("text_encoder", "unet")) or \
        (info.layout, info.kind, set(info.parts)) == ("kohya", "LoCon", {"unet", "text_encoder"})
    pipe = _pipe()
    pipe.load_lora_weights(str(out), adapter_name="q")
    assert _adapted_modules(pipe, "q") == len(modules)  # no key was dropped by the conversion


def test_the_lora_learns_from_large_stars_only() -> None:
    """Small stars come back from the VAE as blobs (docs/tiny-model.md): the LoRA's scenes are the
    large stars of the extension's data set, in its order, and other kinds are the data set as is."""
    from steady.tiny.adapt import new_scenes
    from steady.tiny.data import extension_scenes

    large = new_scenes("star-large", 3, 6)
    everything = list(extension_scenes("star", 3, 40, drop_prob=0.0))
    assert [s.caption for s in large] == [s.caption for s in everything if s.scene.size == "large"][:6]
    assert all(s.scene.shape == "star" for s in large)
    assert [s.caption for s in new_scenes("star", 3, 4)] == [s.caption for s in everything[:4]]


def test_a_continuation_starts_from_every_layer_of_a_saved_file(tmp_path) -> None:
    """--init: the kohya file written by the trainer goes back into the same peft layers, all of
    them, UNet and text encoder (float16 as saved)."""
    import torch

    from steady.tiny.adapt import TeachConfig, add_lora, kohya_state, load_base, save_atomic, start_from

    base, c = load_base(), TeachConfig(rank=4, alpha=4.0)
    params = add_lora(base, c)
    with torch.no_grad():
        for p in params:
            p.normal_()
    saved = kohya_state(base, c)
    save_atomic(saved, tmp_path / "a.safetensors", {})
    with torch.no_grad():
        for p in params:
            p.zero_()
    assert start_from(base, tmp_path / "a.safetensors") == len(saved) // 3
    assert kohya_state(base, c).keys() == saved.keys()
    assert all(torch.equal(kohya_state(base, c)[k], v) for k, v in saved.items())


def test_the_graded_weight_runs_the_layers_at_half_weight_on_large_shapes_named_as_stars(tmp_path) -> None:
    """Step 3b (``--partial-share``): every LoRA layer runs at the asked weight of its scale (as
    ``<lora:NAME:0.5>`` runs it), the decoys are the ordinary pool's large scenes with the new
    word as their shape, and a quick run with it writes its config into the file."""
    import json

    import torch
    from safetensors import safe_open

    from steady.tiny.adapt import LatentPool, TeachConfig, add_lora, as_new_word, load_base, set_weight
    from steady.tiny.data import dataset
    from steady.tiny.teach import main

    base, c = load_base(), TeachConfig(rank=4, alpha=8.0)
    add_lora(base, c)
    layers = [m for part in (base.unet, base.text) for m in part.modules() if hasattr(m, "lora_A")]
    set_weight(base, 0.5)
    assert layers and all(m.scaling["default"] == 0.5 * 8.0 / 4 for m in layers)
    set_weight(base, 1.0)
    assert all(m.scaling["default"] == 8.0 / 4 for m in layers)

    scenes = [s.scene for s in dataset(5, 40, drop_prob=0.0)]
    pool = LatentPool(torch.arange(40.0).reshape(40, 1, 1, 1), scenes)
    decoys = as_new_word(pool, "star-large")
    large = [i for i, s in enumerate(scenes) if s.size == "large"]
    assert 0 < len(large) < 40 and decoys.latents.flatten().tolist() == [float(i) for i in large]
    assert all(d.shape == "star" and d.colour == scenes[i].colour for d, i in zip(decoys.scenes, large, strict=True))
    with pytest.raises(ValueError, match="kind='lime'"):
        as_new_word(pool, "lime")

    out = tmp_path / "graded.safetensors"
    assert main(["lora", "--out", str(out), "--quick", "--partial-share", "1", "--partial-new", "0.5"]) == 0
    with safe_open(str(out), "pt") as f:
        config = json.loads(f.metadata()["steady_training"])["config"]
    assert (config["partial_share"], config["partial_weight"], config["partial_new"]) == (1.0, 0.5, 0.5)


def test_the_lcm_teacher_trajectories_are_cached_and_a_lower_rank_file_starts_a_higher_rank(tmp_path, capsys) -> None:
    """Step 5 (``--ode-weight``): the teacher's 50-step trajectories are written to the cache once
    and read back by the next run; ``--init`` with a rank-16 file fills the first 16 ranks of a
    rank-32 LoRA exactly, its other ranks' up-projections zero (the same function) and their
    down-projections as peft starts them (so they train)."""
    import torch
    from peft import LoraConfig, inject_adapter_in_model
    from safetensors.torch import load_file

    from steady.tiny.adapt import load_base, start_from
    from steady.tiny.lcm import LCM_TARGETS
    from steady.tiny.teach import main

    out, cache = tmp_path / "lcm.safetensors", tmp_path / "traj.safetensors"
    args = ["lcm", "--out", str(out), "--quick", "--ode-weight", "1", "--ode-cache", str(cache)]
    assert main(args) == 0
    saved = load_file(str(cache))
    assert tuple(saved["states"].shape) == (8, 50, 4, 16, 16) and tuple(saved["ends"].shape) == (8, 4, 16, 16)
    assert bool(saved["ends"].isfinite().all()) and not torch.equal(saved["states"][:, -1].float(), saved["ends"])
    capsys.readouterr()
    assert main(args) == 0
    assert "8 teacher trajectories from" in capsys.readouterr().out

    base = load_base()
    inject_adapter_in_model(LoraConfig(r=32, lora_alpha=32.0, target_modules=LCM_TARGETS), base.unet)
    file = load_file(str(out))
    assert start_from(base, out) == len(file) // 3
    name, layer = next((n, m) for n, m in base.unet.named_modules() if hasattr(m, "lora_A"))
    key = "lora_unet_" + name.replace(".", "_")
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert torch.equal(a[:16], file[key + ".lora_down.weight"].float())
    assert torch.equal(b[:, :16], file[key + ".lora_up.weight"].float())
    assert not b[:, 16:].any() and a[16:].abs().sum() > 0


def test_the_quick_embedding_is_an_a1111_file(tmp_path) -> None:
    from safetensors import safe_open

    from steady.tiny.teach import main

    out = tmp_path / "aqua.safetensors"
    assert main(["embedding", "--out", str(out), "--quick"]) == 0
    with safe_open(str(out), "pt") as f:
        assert list(f.keys()) == ["emb_params"]
        assert tuple(f.get_tensor("emb_params").shape) == (1, 64)  # (vectors, the tiny text encoder's width)
        assert f.metadata()["name"] == "aqua"


def test_the_quick_lcm_lora_is_a_unet_only_kohya_file_that_diffusers_applies_in_full(tmp_path) -> None:
    from safetensors import safe_open

    from steady.tiny.teach import main

    out = tmp_path / "lcm.safetensors"
    assert main(["lcm", "--out", str(out), "--quick"]) == 0
    with safe_open(str(out), "pt") as f:
        keys = list(f.keys())
    modules = {k.split(".")[0] for k in keys}
    assert all(k.startswith("lora_unet_") for k in keys) and len(keys) == 3 * len(modules)
    pipe = _pipe()
    pipe.load_lora_weights(str(out), adapter_name="l")
    assert _adapted_modules(pipe, "l") == len(modules)


LCM = shipped_lora_dir() / "tiny-lcm.safetensors"
AQUA = shipped_lora_dir().parent / "embeddings" / "aqua.safetensors"


@pytest.mark.skipif(not LCM.is_file(), reason="no shipped LCM-LoRA")
def test_the_shipped_lcm_lora_is_found_by_name_and_applies_in_full() -> None:
    from safetensors import safe_open

    from steady.config import settings
    from steady.models.detect import inspect_model
    from steady.models.loras import find_lora, unfit_reason

    info = find_lora("tiny-lcm", settings())
    assert info.path == LCM and info.layout == "kohya" and info.parts == ("unet",)
    assert 100_000 <= LCM.stat().st_size <= 2_500_000  # rank 32 on 79 layers, float16: about 2 MB
    assert unfit_reason(info, inspect_model(embedded_model_path())) == ""
    with safe_open(str(LCM), "pt") as f:
        modules = {k.split(".")[0] for k in f.keys()}
    pipe = _pipe()
    pipe.load_lora_weights(str(LCM), adapter_name="lcm")
    assert _adapted_modules(pipe, "lcm") == len(modules)


@pytest.mark.skipif(not AQUA.is_file(), reason="no shipped embedding")
def test_the_shipped_embedding_is_one_a1111_vector_for_its_word() -> None:
    from safetensors import safe_open

    with safe_open(str(AQUA), "pt") as f:
        assert list(f.keys()) == ["emb_params"] and f.metadata()["name"] == "aqua"
        vector = f.get_tensor("emb_params")
    assert tuple(vector.shape) == (1, 64) and bool(vector.isfinite().all())


STAR = shipped_lora_dir() / "tiny-star.safetensors"


@pytest.mark.skipif(not STAR.is_file(), reason="no shipped star LoRA")
def test_the_shipped_star_lora_is_found_by_name_and_draws_stars_the_model_cannot(sup) -> None:
    """The star LoRA goes through a user's path (found by its tag, loaded by the worker) and turns
    large-star prompts that the embedded model draws as other shapes into stars (the checker reads
    them); a few images here, 32 per weight in docs/benchmarks.md."""
    import numpy as np
    from PIL import Image

    import steady
    from steady.config import settings
    from steady.models.detect import inspect_model
    from steady.models.loras import find_lora, unfit_reason
    from steady.params import GenerationRequest
    from steady.tiny.checker import check
    from steady.tiny.evaluate import extension_prompts

    info = find_lora("tiny-star", settings())
    assert info.path == STAR and info.layout == "kohya" and set(info.parts) == {"unet", "text_encoder"}
    assert 100_000 <= STAR.stat().st_size <= 1_000_000
    assert unfit_reason(info, inspect_model(embedded_model_path())) == ""

    def stars(append: str) -> tuple[int, list[dict]]:
        found, extras = 0, []
        for p in extension_prompts("star-large", 6):
            [r] = steady.generate(GenerationRequest(prompt=p.prompt + append, seed=p.seed, steps=20, sampler="Euler"),
                                  supervisor=sup)  # fmt: skip
            found += check(np.asarray(Image.open(r.path).convert("RGB")), p.prompt).estimate.shape == "star"
            extras.append(r.params.extra)
        return found, extras

    without, plain = stars("")
    with_lora, adapted = stars(" <lora:tiny-star:1>")
    assert without <= 1 and with_lora >= without + 3, (without, with_lora)
    assert all("loras" not in e for e in plain)
    assert all([x["name"] for x in e["loras"]] == ["tiny-star"] for e in adapted)
