"""ComfyUI and InvokeAI PNG metadata: fixtures shaped like those tools' real output."""

from __future__ import annotations

import copy
import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo as PilPngInfo

from steady.images.infotext import parse
from steady.images.pngmeta import read_png_info

# ComfyUI's default text-to-image graph, as its SaveImage node stores it (`prompt` chunk).
COMFY_DEFAULT = {
    "3": {"inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
                     "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                     "latent_image": ["5", 0]}, "class_type": "KSampler"},
    "4": {"inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}, "class_type": "CheckpointLoaderSimple"},
    "5": {"inputs": {"width": 512, "height": 512, "batch_size": 1}, "class_type": "EmptyLatentImage"},
    "6": {"inputs": {"text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
                     "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
    "7": {"inputs": {"text": "text, watermark", "clip": ["4", 1]}, "class_type": "CLIPTextEncode"},
    "8": {"inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "class_type": "VAEDecode"},
    "9": {"inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}, "class_type": "SaveImage"},
}

# The same graph as the editor stores it (`workflow` chunk), trimmed to what matters.
COMFY_WORKFLOW = {
    "last_node_id": 9, "last_link_id": 9,
    "nodes": [
        {"id": 3, "type": "KSampler", "inputs": [
            {"name": "model", "type": "MODEL", "link": 1}, {"name": "positive", "type": "CONDITIONING", "link": 4},
            {"name": "negative", "type": "CONDITIONING", "link": 6}, {"name": "latent_image", "type": "LATENT", "link": 2}],
         "widgets_values": [156680208700286, "randomize", 20, 8, "euler", "normal", 1]},
        {"id": 4, "type": "CheckpointLoaderSimple", "inputs": [], "widgets_values": ["v1-5-pruned-emaonly.safetensors"]},
        {"id": 5, "type": "EmptyLatentImage", "inputs": [], "widgets_values": [512, 512, 1]},
        {"id": 6, "type": "CLIPTextEncode", "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
         "widgets_values": ["beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"]},
        {"id": 7, "type": "CLIPTextEncode", "inputs": [{"name": "clip", "type": "CLIP", "link": 5}],
         "widgets_values": ["text, watermark"]},
        {"id": 10, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 7}], "widgets_values": []},
    ],
    "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 10, 0, 3, 1, "CONDITIONING"],
              [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 6, 0, 10, 0, "CONDITIONING"]],
    "version": 0.4,
}


def png_with(tmp_path, name="a.png", **texts) -> str:
    chunks = PilPngInfo()
    for key, value in texts.items():
        chunks.add_text(key.replace("__", "-"), value if isinstance(value, str) else json.dumps(value))
    path = tmp_path / name
    Image.new("RGB", (8, 8)).save(path, pnginfo=chunks)
    return str(path)


def test_comfyui_default_graph(tmp_path):
    info = read_png_info(png_with(tmp_path, prompt=COMFY_DEFAULT, workflow=COMFY_WORKFLOW))
    assert info.source == "comfyui" and info.warnings == []
    p = info.params
    assert p["prompt"] == "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"
    assert p["negative_prompt"] == "text, watermark"
    assert (p["seed"], p["steps"], p["cfg_scale"], p["sampler"]) == (156680208700286, 20, 8.0, "Euler")
    assert (p["width"], p["height"]) == (512, 512)
    assert p["model_name"] == "v1-5-pruned-emaonly" and p["ckpt_name"] == "v1-5-pruned-emaonly.safetensors"
    assert "schedule_type" not in p and "denoising_strength" not in p
    assert info.parameters_text == (
        "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,\n"
        "Negative prompt: text, watermark\n"
        "Steps: 20, Sampler: Euler, CFG scale: 8, Seed: 156680208700286, Size: 512x512, Model: v1-5-pruned-emaonly"
    )
    # The synthesised text reads back as the same parameters.
    back = parse(info.parameters_text).params
    assert (back["seed"], back["width"], back["model_name"]) == (156680208700286, 512, "v1-5-pruned-emaonly")


def test_comfyui_workflow_only(tmp_path):
    info = read_png_info(png_with(tmp_path, workflow=COMFY_WORKFLOW))
    assert info.source == "comfyui" and info.warnings == []
    p = info.params
    assert p["prompt"].startswith("beautiful scenery") and p["negative_prompt"] == "text, watermark"
    assert (p["seed"], p["steps"], p["cfg_scale"], p["width"], p["model_name"]) == (
        156680208700286, 20, 8.0, 512, "v1-5-pruned-emaonly")


def test_comfyui_advanced_lora_clip_skip_hires_and_primitive(tmp_path):
    graph = copy.deepcopy(COMFY_DEFAULT)
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "enable", "noise_seed": ["20", 0], "steps": 30, "cfg": 6.5, "sampler_name": "dpmpp_2m",
        "scheduler": "karras", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable",
        "model": ["11", 0], "positive": ["12", 0], "negative": ["7", 0], "latent_image": ["5", 0]}}
    graph["11"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "detail.safetensors", "strength_model": 0.7,
                                                          "strength_clip": 1, "model": ["4", 0], "clip": ["13", 0]}}
    graph["12"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["14", 0]}}
    graph["13"] = {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["4", 1]}}
    graph["14"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "golden hour", "clip": ["13", 0]}}
    graph["20"] = {"class_type": "PrimitiveNode", "inputs": {"value": 77}}
    # A hires second pass: upscaled latent into another sampler; the first pass is reported.
    graph["21"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "width": 1024, "height": 1024}}
    graph["2"] = {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 10, "cfg": 6.5, "sampler_name": "euler",
                                                       "scheduler": "normal", "denoise": 0.5, "model": ["11", 0],
                                                       "positive": ["12", 0], "negative": ["7", 0], "latent_image": ["21", 0]}}
    info = read_png_info(png_with(tmp_path, prompt=graph))
    p = info.params
    assert info.warnings == []
    assert p["prompt"] == "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,\ngolden hour"
    assert (p["seed"], p["steps"], p["cfg_scale"], p["sampler"]) == (77, 30, 6.5, "DPM++ 2M Karras")
    assert p["clip_skip"] == 2 and p["comfyui_samplers"] == 2
    assert p["loras"] == [{"name": "detail.safetensors", "strength_model": 0.7, "strength_clip": 1}]
    assert p["model_name"] == "v1-5-pruned-emaonly" and (p["width"], p["height"]) == (512, 512)
    assert "Clip skip: 2" in info.parameters_text and "Sampler: DPM++ 2M Karras" in info.parameters_text


def test_comfyui_malformed(tmp_path):
    info = read_png_info(png_with(tmp_path, prompt="{broken", workflow="[]"))
    assert info.source == "comfyui" and info.params == {} and info.parameters_text == ""
    assert any("not valid JSON" in w for w in info.warnings)
    graph = copy.deepcopy(COMFY_DEFAULT)
    graph["3"]["inputs"]["steps"] = "twenty"
    graph["5"]["inputs"]["width"] = None
    graph["99"] = "not a node"
    bad = read_png_info(png_with(tmp_path, "b.png", prompt=graph))
    assert "steps" not in bad.params and bad.params["seed"] == 156680208700286 and bad.params["height"] == 512
    assert any("steps" in w for w in bad.warnings) and any("'99'" in w for w in bad.warnings)
    cyclic = {"1": {"class_type": "KSampler", "inputs": {"positive": ["2", 0], "negative": ["2", 0]}},
              "2": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0]}}}
    loop = read_png_info(png_with(tmp_path, "c.png", prompt=cyclic))
    assert loop.params["prompt"] == ""


INVOKE_V4 = {
    "generation_mode": "txt2img", "positive_prompt": "a lighthouse at dusk, volumetric fog",
    "negative_prompt": "blurry", "width": 768, "height": 512, "seed": 2973071392, "rand_device": "cpu",
    "cfg_scale": 7.5, "cfg_rescale_multiplier": 0, "steps": 30, "scheduler": "dpmpp_2m_k", "clip_skip": 1,
    "model": {"key": "3e7f9a2c", "hash": "blake3:0b5e4c1f", "name": "Juggernaut XL v9", "base": "sdxl", "type": "main"},
    "app_version": "4.2.4",
}

INVOKE_LEGACY = {
    "model": "stable diffusion", "model_weights": "stable-diffusion-1.5",
    "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
    "app_id": "invoke-ai/InvokeAI", "app_version": "2.2.4",
    "image": {"prompt": [{"prompt": "a castle on a hill [fog, people]", "weight": 1.0}], "steps": 50, "cfg_scale": 7.5,
              "threshold": 0, "perlin": 0, "height": 512, "width": 512, "seed": 3676, "seamless": False,
              "type": "txt2img", "postprocessing": None, "sampler": "k_lms", "variations": []},
}


def test_invokeai_v4(tmp_path):
    info = read_png_info(png_with(tmp_path, invokeai_metadata=INVOKE_V4))
    assert info.source == "invokeai" and info.warnings == []
    p = info.params
    assert (p["prompt"], p["negative_prompt"]) == ("a lighthouse at dusk, volumetric fog", "blurry")
    assert (p["steps"], p["cfg_scale"], p["seed"], p["width"], p["height"]) == (30, 7.5, 2973071392, 768, 512)
    assert (p["sampler"], p["clip_skip"], p["model_name"]) == ("DPM++ 2M Karras", 2, "Juggernaut XL v9")
    assert "model_hash" not in p  # blake3 is not A1111's sha256 short hash
    assert p["app_version"] == "4.2.4" and p["model"]["base"] == "sdxl"
    assert info.parameters_text.splitlines() == [
        "a lighthouse at dusk, volumetric fog",
        "Negative prompt: blurry",
        "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 2973071392, Size: 768x512, "
        "Model: Juggernaut XL v9, Clip skip: 2",
    ]


def test_invokeai_legacy_sd_metadata(tmp_path):
    info = read_png_info(png_with(tmp_path, sd__metadata=INVOKE_LEGACY))
    assert info.source == "invokeai" and info.warnings == []
    p = info.params
    assert (p["prompt"], p["negative_prompt"]) == ("a castle on a hill", "fog, people")
    assert (p["sampler"], p["model_hash"], p["model_name"]) == ("LMS", "cc6cb27103", "stable-diffusion-1.5")
    assert (p["steps"], p["seed"]) == (50, 3676)


def test_invokeai_wrong_types(tmp_path):
    data = dict(INVOKE_V4, steps="thirty", seed=None, positive_prompt=["a", "b"])
    info = read_png_info(png_with(tmp_path, invokeai_metadata=data))
    assert info.source == "invokeai"
    assert "steps" not in info.params and "prompt" not in info.params and info.params["width"] == 768
    assert len(info.warnings) == 2
    broken = read_png_info(png_with(tmp_path, "b.png", invokeai_metadata="{{", sd__metadata=INVOKE_LEGACY))
    assert broken.params["seed"] == 3676 and "not valid JSON" in broken.warnings[0]


def test_comfyui_workflow_links_of_any_shape_are_passed_over():
    """Found by fuzzing (tests/fuzz/test_fuzz_png.py): a workflow whose links are not a list, or
    whose ids are lists, raised TypeError; it is read like any malformed graph."""
    from steady.images import foreign

    for workflow in ({"nodes": [], "links": True}, {"nodes": [{"id": 1, "type": "KSampler", "inputs": 5}], "links": 3},
                     {"nodes": [{"id": 1, "type": "KSampler", "inputs": [{"name": "seed", "link": [1]}]}],
                      "links": [[[1], 2, 0, 1, 0, "INT"], {"id": [2]}]}):  # fmt: skip
        found = foreign.comfyui(None, json.dumps(workflow))
        assert isinstance(found.warnings, list)
