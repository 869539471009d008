"""The training script end to end at toy length: it saves a diffusers folder that loads through
the user's checkpoint path, generates a 64x64 image, and is reproducible from its seed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from steady.tiny.train import TrainConfig, latent_outline, loss_weights_vae, lr_at, prefix_text_encoder, train

TOY = TrainConfig(threads=1, vae_steps=3, vae_batch=8, vae_eval_every=0, pool=64, unet_steps=3, unet_stop=0,
                  unet_batch=8, eval_every=0, log_every=1, decoder_steps=2,
                  bind_phases="position-only:2,colours+full:2", bind_scenes=16, bind_batch=4)  # fmt: skip


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.safetensors"))}  # fmt: skip


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    train(TOY, out)
    return out


def test_saves_a_pipeline_folder_with_log_and_curve(toy_model: Path) -> None:
    for part in ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (toy_model / part).exists(), part
    log = json.loads((toy_model / "training.json").read_text())
    assert [r["step"] for r in log["vae_loss"]] == [1, 2, 3]
    assert len(log["unet_loss"]) == 3 and all(np.isfinite(r["loss"]) for r in log["unet_loss"])
    assert log["latents"]["scaling_factor"] > 0
    assert [r["step"] for r in log["decoder_loss"]] == [1, 2]
    assert set(log["decoder"]) == {"kept", "before", "after"}
    assert (toy_model / "loss.png").stat().st_size > 1000
    vae_cfg = json.loads((toy_model / "vae" / "config.json").read_text())
    assert vae_cfg["scaling_factor"] == pytest.approx(log["latents"]["scaling_factor"])


def test_weights_are_float16_and_text_encoder_keys_prefixed(toy_model: Path) -> None:
    from safetensors import safe_open

    for f in toy_model.rglob("*.safetensors"):
        with safe_open(f, "pt") as st:
            keys = list(st.keys())
            assert {st.get_tensor(k).dtype for k in keys} == {torch.float16}, f
        if f.parent.name == "text_encoder":
            assert all(k.startswith("text_model.") for k in keys)


def test_loads_through_the_checkpoint_path_and_generates(toy_model: Path) -> None:
    import steady
    from steady.params import GenerationRequest

    results = steady.generate(GenerationRequest(prompt="a red circle", model=str(toy_model), steps=2, seed=5))
    assert len(results) == 1
    from PIL import Image

    with Image.open(results[0].path) as im:
        assert im.size == (64, 64)


def test_same_seed_same_weights(toy_model: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    train(TOY, again)
    assert _digest(again) == _digest(toy_model)
    other = tmp_path / "other"
    train(replace(TOY, seed=1), other)
    assert _digest(other)["unet/diffusion_pytorch_model.safetensors"] != _digest(toy_model)[
        "unet/diffusion_pytorch_model.safetensors"
    ]


def test_prefixed_text_encoder_loads_to_the_same_outputs(tmp_path: Path) -> None:
    from steady.tiny.arch import Architecture, build_text

    text = build_text(Architecture()).eval()
    text.save_pretrained(tmp_path, safe_serialization=True)
    prefix_text_encoder(tmp_path / "model.safetensors")
    from transformers import CLIPTextModel

    loaded = CLIPTextModel.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[49406, 320, 1449, 2446, 49407] + [49407] * 72])
    with torch.no_grad():
        assert torch.equal(loaded(ids).last_hidden_state, text(ids).last_hidden_state)


def test_learning_rate_warms_up_then_decays() -> None:
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(99, 100, 1.0, 10) == pytest.approx(0.05, abs=0.01)


def test_eval_tiny_scores_a_model_through_the_cli(toy_model: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from steady.cli import _register_all, cli

    _register_all()
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["eval-tiny", "--model", str(toy_model), "--per-holdout", "1", "--seen", "2",
                                      "--variety", "3", "--steps", "2", "--json", "--sheet", str(sheet)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["n_images"] == 6 and report["variety_images"] == 3
    assert set(report["accuracy"]) == {"shape", "colour", "size", "position", "background"}
    assert all(0.0 <= v <= 1.0 for v in report["accuracy"].values())
    assert report["seconds_per_image"] > 0 and isinstance(report["misses"], list)
    from PIL import Image

    with Image.open(sheet) as im:
        assert im.size == (16 * 64, 64)


def test_offset_noise_hides_the_signal_in_the_noise_mean() -> None:
    """The background colour must come from the prompt, not from the starting noise's mean."""
    from steady.tiny.train import training_noise

    gen = torch.Generator().manual_seed(0)
    plain = training_noise((512, 4, 16, 16), 0.0, gen)
    offset = training_noise((512, 4, 16, 16), 0.15, gen)
    assert plain.mean(dim=(2, 3)).std().item() == pytest.approx(1 / 16, rel=0.1)
    assert offset.mean(dim=(2, 3)).std().item() == pytest.approx((1 / 256 + 0.15**2) ** 0.5, rel=0.1)
    assert offset.std().item() == pytest.approx(1.0, abs=0.03)  # per pixel still ~N(0, 1)


def test_loss_weights_min_snr_and_high_timestep_cap() -> None:
    """Where SNR > 1 the weights are min-SNR-gamma's; below it, with a cap, the epsilon loss
    becomes the x0 loss (weight 1/SNR), capped; without a cap the high timesteps keep weight 1."""
    from steady.tiny.train import loss_weights

    snr = torch.tensor([100.0, 10.0, 2.0, 0.5, 0.2, 0.01])
    plain = loss_weights(snr, 5.0, 0.0)
    assert plain.tolist() == pytest.approx([0.05, 0.5, 1.0, 1.0, 1.0, 1.0])
    capped = loss_weights(snr, 5.0, 10.0)
    assert capped.tolist() == pytest.approx([0.05, 0.5, 1.0, 2.0, 5.0, 10.0])
    # x0 loss below SNR 1 until the cap: weight * SNR (the image error's weight) is 1 there
    assert (capped * snr)[3:5].tolist() == pytest.approx([1.0, 1.0])


def test_unet_levels_put_cross_attention_below_the_first_resolution() -> None:
    from steady.tiny.arch import unet_levels

    assert unet_levels((48, 96)) == {"unet_channels": (48, 96), "down_blocks": ("DownBlock2D", "CrossAttnDownBlock2D"),
                                     "up_blocks": ("CrossAttnUpBlock2D", "UpBlock2D")}  # fmt: skip
    three = unet_levels((48, 96, 96))
    assert three["down_blocks"] == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert three["up_blocks"] == ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")


def test_vae_from_reuses_a_trained_vae_and_skips_step_1(toy_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "reused"
    log = train(replace(TOY, vae_from=str(toy_model), decoder_steps=0), out)
    assert log["vae_loss"] == [] and log["vae_from"] == str(toy_model)
    assert "_name_or_path" not in json.loads((out / "vae" / "config.json").read_text())
    assert _digest(out)["vae/diffusion_pytorch_model.safetensors"] == _digest(toy_model)[
        "vae/diffusion_pytorch_model.safetensors"
    ]


def test_a_run_on_a_saved_vae_trains_the_same_unet_as_the_full_run(tmp_path: Path) -> None:
    full = tmp_path / "full"
    train(replace(TOY, decoder_steps=0), full)
    reused = tmp_path / "reused"
    train(replace(TOY, decoder_steps=0, vae_from=str(full)), reused)
    assert _digest(reused) == _digest(full)


def test_init_from_continues_a_saved_model(toy_model: Path, tmp_path: Path) -> None:
    """A continuation starts from the folder's UNet and text encoder (at learning rate 0 they come back
    equal) and keeps its VAE and latent scale; with a learning rate the UNet moves."""
    from safetensors.torch import load_file

    def weights(folder: Path, part: str) -> dict[str, torch.Tensor]:
        return load_file(folder / part)

    unet, text = "unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"
    still = tmp_path / "still"
    log = train(replace(TOY, init_from=str(toy_model), unet_lr=0.0, bind_lr=0.0, decoder_steps=0, seed=1), still)
    assert log["init_from"] == log["vae_from"] == str(toy_model) and log["vae_loss"] == []
    for part in (unet, text, "vae/diffusion_pytorch_model.safetensors"):
        before, after = weights(toy_model, part), weights(still, part)
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), part
    scale = json.loads((toy_model / "vae" / "config.json").read_text())["scaling_factor"]
    assert json.loads((still / "vae" / "config.json").read_text())["scaling_factor"] == scale
    moved = tmp_path / "moved"
    train(replace(TOY, init_from=str(toy_model), decoder_steps=0, seed=1), moved)
    before, after = weights(toy_model, unet), weights(moved, unet)
    assert not all(torch.equal(before[k], after[k]) for k in before)


def test_vae_loss_weights_mark_the_shape_and_its_outline() -> None:
    """1 on the background, 1 + fg inside the shape, and with an edge weight a band either side of
    the outline: a pixel just outside a large square gains weight, the far corner and the deep
    inside do not."""
    from steady.tiny.data import Sample, render, scene_for

    scene = scene_for({"shape": "square", "size": "large", "position": "center", "colour": "red",
                       "background": "blue"}, np.random.default_rng(0))  # fmt: skip
    sample = Sample(render(scene), "", scene)
    plain, edged = loss_weights_vae([sample], 8.0, 0.0), loss_weights_vae([sample], 8.0, 16.0)
    assert plain.shape == edged.shape == (1, 1, 64, 64)
    cy, cx = round(scene.cy), round(scene.cx)
    half = int(scene.scale * 0.9)  # SQUARE_HALF_SIDE
    assert plain[0, 0, 0, 0] == edged[0, 0, 0, 0] == 1.0
    assert plain[0, 0, cy, cx] == edged[0, 0, cy, cx] == pytest.approx(9.0)
    outside = (cy, cx + half + 1)
    assert plain[0, 0, outside[0], outside[1]] == 1.0 and edged[0, 0, outside[0], outside[1]] > 10.0
    assert (edged >= plain).all()


def test_latent_outline_is_the_ring_of_cells_the_outline_crosses() -> None:
    """At latent resolution the outline weight covers the cells along a large centred square's sides,
    not the cell at its middle nor the image's corners."""
    from steady.tiny.data import Sample, render, scene_for

    scene = scene_for({"shape": "square", "size": "large", "position": "center"}, np.random.default_rng(1))
    ring = latent_outline([Sample(render(scene), "", scene)])[0, 0]
    assert ring.shape == (16, 16) and float(ring.min()) >= 0.0 and float(ring.max()) <= 1.0
    cy, cx = int(scene.cy) // 4, int(scene.cx) // 4
    side = int(scene.cx + scene.scale * 0.9) // 4  # the cell the right side runs through
    assert ring[cy, cx] == 0.0 and ring[0, 0] == 0.0 and ring[cy, side] > 0.25


def test_latent_edge_weight_changes_what_step_3_learns(toy_model: Path, tmp_path: Path) -> None:
    """The same seed with the outline weight on trains a different UNet (the VAE is the same)."""
    out = tmp_path / "edged"
    log = train(replace(TOY, latent_edge_weight=4.0), out)
    assert log["config"]["latent_edge_weight"] == 4.0 and all(np.isfinite(r["loss"]) for r in log["unet_loss"])
    unet, vae = "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"
    assert _digest(out)[vae] == _digest(toy_model)[vae] and _digest(out)[unet] != _digest(toy_model)[unet]


def test_the_defaults_are_the_shipped_from_nothing_run() -> None:
    """`python -m steady.tiny.train --out DIR` with no options is the run whose log is committed
    (docs/tiny-training/from-nothing.json): the config that log recorded is TrainConfig's defaults."""
    log = json.loads((Path(__file__).parents[2] / "docs" / "tiny-training" / "from-nothing.json").read_text())
    assert log["config"] == TrainConfig().to_dict()
    assert "vae" in log["timings_s"] and "init_from" not in log and "vae_from" not in log
