"""Generation parameters from other tools' PNGs: ComfyUI graphs and InvokeAI JSON.

Both come back as a `Found`: params under our ImageParams names (prompt, negative_prompt,
steps, cfg_scale, seed, sampler, width, height, model_name, model_hash, clip_skip) plus the
tool's own values verbatim, and warnings for anything malformed. Nothing here raises on bad
metadata: a screenshot of a half-broken graph should still show its prompt.

ComfyUI stores two chunks. `prompt` is the API graph, {node_id: {class_type, inputs}}, where
an input is a value or a link [node_id, output_slot]. `workflow` is the editor's graph (nodes
with positional widgets_values and a separate link table); we only read it when `prompt` is
missing, by converting the few node types we understand into the API shape.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from steady.errors import BadInput
from steady.params import canonical_sampler

SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced")
_TEXT_INPUTS = ("text", "text_g", "text_l")
_SCALAR_INPUTS = ("value", "seed", "noise_seed", "int", "float", "number", "text", "string")
_LATENT_INPUTS = ("samples", "latent", "latent_image")
_MAX_NODES = 500  # graphs are small; this only bounds a walk through a malformed, cyclic one

# Editor widgets in the order ComfyUI stores them in `widgets_values`, for the node types we
# read from a `workflow`-only image. control_after_generate follows every seed widget.
_WIDGETS: dict[str, tuple[str, ...]] = {
    "KSampler": ("seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "control_after_generate", "steps", "cfg", "sampler_name",
                         "scheduler", "start_at_step", "end_at_step", "return_with_leftover_noise"),
    "CLIPTextEncode": ("text",),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CLIPSetLastLayer": ("stop_at_clip_layer",),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "PrimitiveNode": ("value", "control_after_generate"),
}

# ComfyUI/InvokeAI scheduler names -> A1111 "Schedule type" labels.
_SCHEDULE_TYPES = {
    "karras": "Karras", "exponential": "Exponential", "sgm_uniform": "SGM Uniform", "simple": "Simple",
    "ddim_uniform": "DDIM", "beta": "Beta", "normal": "Normal",
}


@dataclass
class Found:
    """Parameters read from another tool's metadata."""

    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- ComfyUI


def comfyui(prompt_text: str | None, workflow_text: str | None) -> Found:
    """Read ComfyUI's `prompt` (API graph) chunk, or its `workflow` chunk when that is all there is."""
    found = Found()
    graph: dict[str, dict[str, Any]] = {}
    if prompt_text is not None:
        data = _load_json(prompt_text, "prompt", found)
        if isinstance(data, dict):
            graph = _clean_graph(data, found)
        elif data is not None:
            found.warnings.append(f"prompt chunk is a JSON {type(data).__name__}, not an object of nodes")
    if not graph and workflow_text is not None:
        data = _load_json(workflow_text, "workflow", found)
        if isinstance(data, dict):
            graph = _workflow_graph(data, found)
        elif data is not None:
            found.warnings.append(f"workflow chunk is a JSON {type(data).__name__}, not an object")
    if not graph:
        found.warnings.append("no ComfyUI graph could be read")
        return found
    _read_graph(graph, found)
    return found


def _clean_graph(data: dict[str, Any], found: Found) -> dict[str, dict[str, Any]]:
    graph: dict[str, dict[str, Any]] = {}
    for node_id, node in data.items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            inputs = inputs if isinstance(inputs, dict) else {}
            graph[str(node_id)] = {"class_type": node["class_type"], "inputs": inputs}
        else:
            found.warnings.append(f"prompt chunk: node {node_id!r} has no class_type")
    return graph


def _read_graph(graph: dict[str, dict[str, Any]], found: Found) -> None:
    samplers = sorted((nid for nid, node in graph.items() if node["class_type"] in SAMPLER_CLASSES), key=_id_order)
    clip_layers = [node for node in graph.values() if node["class_type"] == "CLIPSetLastLayer"]
    if clip_layers:
        stop_at = _scalar(graph, clip_layers[0]["inputs"].get("stop_at_clip_layer"))
        layer = _as_int(stop_at, "stop_at_clip_layer", found)
        if layer is not None and layer < 0:
            found.params["clip_skip"] = -layer  # ComfyUI -2 == A1111 Clip skip 2
    if not samplers:
        found.warnings.append("no KSampler node in the ComfyUI graph")
        _read_checkpoint_anywhere(graph, found)
        return
    # The first pass (the sampler fed by an empty latent) carries the seed and size a user
    # means; a hires-fix second sampler is reported only by count.
    first = [nid for nid in samplers if _size_node(graph, graph[nid]["inputs"].get("latent_image"), direct=True)]
    chosen = (first or samplers)[0]
    if len(samplers) > 1:
        found.params["comfyui_samplers"] = len(samplers)
    inputs = graph[chosen]["inputs"]
    params = found.params
    params["prompt"] = "\n".join(_texts(graph, inputs.get("positive"), "positive", found))
    params["negative_prompt"] = "\n".join(_texts(graph, inputs.get("negative"), "negative", found))
    seed = _as_int(_scalar(graph, inputs.get("seed", inputs.get("noise_seed"))), "seed", found)
    steps = _as_int(_scalar(graph, inputs.get("steps")), "steps", found)
    cfg = _as_float(_scalar(graph, inputs.get("cfg")), "cfg", found)
    denoise = _as_float(_scalar(graph, inputs.get("denoise")), "denoise", found)
    for name, value in (("seed", seed), ("steps", steps), ("cfg_scale", cfg)):
        if value is not None:
            params[name] = value
    if denoise is not None and denoise != 1.0:
        params["denoising_strength"] = denoise
    sampler_name = _scalar(graph, inputs.get("sampler_name"))
    scheduler = _scalar(graph, inputs.get("scheduler"))
    if isinstance(sampler_name, str):
        params["sampler_name"] = sampler_name
        params["scheduler"] = scheduler if isinstance(scheduler, str) else ""
        set_sampler(params, sampler_name, scheduler if isinstance(scheduler, str) else "")
    size = _size_node(graph, inputs.get("latent_image"), direct=False)
    if size is not None:
        for name in ("width", "height"):
            value = _as_int(_scalar(graph, size["inputs"].get(name)), name, found)
            if value is not None:
                params[name] = value
    _read_model(graph, inputs.get("model"), found)


def _id_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def _is_link(value: Any) -> bool:
    if not (isinstance(value, list) and len(value) == 2):
        return False
    return isinstance(value[0], (str, int)) and not isinstance(value[0], bool)


def _node(graph: dict[str, dict[str, Any]], link: Any) -> dict[str, Any] | None:
    return graph.get(str(link[0])) if _is_link(link) else None


def _scalar(graph: dict[str, dict[str, Any]], value: Any, depth: int = 0) -> Any:
    """A literal input, or the literal behind a link to a primitive/seed/text node."""
    if not _is_link(value):
        return value
    node = _node(graph, value)
    if node is None or depth > 20:
        return None
    for name in _SCALAR_INPUTS:
        if name in node["inputs"]:
            return _scalar(graph, node["inputs"][name], depth + 1)
    return None


def _walk(graph: dict[str, dict[str, Any]], start: Any, follow: Any) -> list[dict[str, Any]]:
    """Nodes reachable from link `start`, breadth first; follow(node) names the inputs to take."""
    seen: set[str] = set()
    order: list[dict[str, Any]] = []
    queue = deque([start])
    while queue and len(seen) < _MAX_NODES:
        link = queue.popleft()
        if not _is_link(link) or str(link[0]) in seen or str(link[0]) not in graph:
            continue
        seen.add(str(link[0]))
        node = graph[str(link[0])]
        order.append(node)
        queue.extend(node["inputs"].get(name) for name in follow(node))
    return order


def _texts(graph: dict[str, dict[str, Any]], start: Any, branch: str, found: Found) -> list[str]:
    # Conditioning passes through combiners and ControlNet appliers; a node that has both
    # positive and negative inputs is followed only along the branch we are reading.
    def follow(node: dict[str, Any]) -> list[str]:
        if any(name in node["inputs"] for name in _TEXT_INPUTS):
            return []
        if branch in node["inputs"]:
            return [branch]
        return [name for name in node["inputs"] if "conditioning" in name.lower()]

    texts: list[str] = []
    for node in _walk(graph, start, follow):
        for name in _TEXT_INPUTS:
            text = _scalar(graph, node["inputs"].get(name))
            if name in node["inputs"] and not isinstance(text, str):
                found.warnings.append(f"{node['class_type']}: {name} is not text")
            elif isinstance(text, str) and text not in texts:
                texts.append(text)
    return texts


def _size_node(graph: dict[str, dict[str, Any]], start: Any, direct: bool) -> dict[str, Any] | None:
    # direct: only an empty latent right at the sampler counts (a first pass, not an upscale).
    def follow(node: dict[str, Any]) -> list[str]:
        return [] if direct else [name for name in _LATENT_INPUTS if name in node["inputs"]]

    for node in _walk(graph, start, follow):
        inputs = node["inputs"]
        if "width" in inputs and "height" in inputs and not (direct and any(n in inputs for n in _LATENT_INPUTS)):
            return node
    return None


def _read_model(graph: dict[str, dict[str, Any]], start: Any, found: Found) -> None:
    loras: list[dict[str, Any]] = []
    for node in _walk(graph, start, lambda node: ["model"]):
        inputs = node["inputs"]
        if isinstance(inputs.get("lora_name"), str):
            loras.append({"name": inputs["lora_name"], "strength_model": inputs.get("strength_model"),
                          "strength_clip": inputs.get("strength_clip")})
        for name in ("ckpt_name", "unet_name"):
            if isinstance(inputs.get(name), str):
                _set_checkpoint(found.params, inputs[name])
    if loras:
        found.params["loras"] = loras


def _read_checkpoint_anywhere(graph: dict[str, dict[str, Any]], found: Found) -> None:
    for node_id in sorted(graph, key=_id_order):
        name = graph[node_id]["inputs"].get("ckpt_name")
        if isinstance(name, str):
            _set_checkpoint(found.params, name)
            return


def _set_checkpoint(params: dict[str, Any], ckpt_name: str) -> None:
    # A1111 names a model by its file name without folder or extension.
    params["ckpt_name"] = ckpt_name
    params["model_name"] = os.path.splitext(re.split(r"[\\/]", ckpt_name)[-1])[0]


def _workflow_graph(data: dict[str, Any], found: Found) -> dict[str, dict[str, Any]]:
    """Convert the editor's `workflow` into the API graph shape, for the node types we know."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        found.warnings.append("workflow chunk has no node list")
        return {}
    links: dict[int, list[Any]] = {}
    for link in _list(data.get("links")):
        if isinstance(link, list) and len(link) >= 5 and _is_id(link[0]):
            links[link[0]] = [str(link[1]), link[2]]
        elif isinstance(link, dict) and _is_id(link.get("id")):
            links[link["id"]] = [str(link.get("origin_id")), link.get("origin_slot")]
    by_id = {str(node.get("id")): node for node in nodes if isinstance(node, dict)}
    graph: dict[str, dict[str, Any]] = {}
    for node_id, node in by_id.items():
        kind = node.get("type")
        if not isinstance(kind, str):
            found.warnings.append(f"workflow chunk: node {node_id} has no type")
            continue
        inputs: dict[str, Any] = {}
        for slot in _list(node.get("inputs")):
            if isinstance(slot, dict) and _is_id(slot.get("link")) and slot["link"] in links:
                inputs[str(slot.get("name"))] = _through_reroutes(links[slot["link"]], by_id, links)
        values = node.get("widgets_values")
        if isinstance(values, dict):
            for name, value in values.items():
                inputs.setdefault(str(name), value)
        elif isinstance(values, list) and kind in _WIDGETS:
            # A widget converted to an input keeps its slot in widgets_values; the link wins.
            for name, value in zip(_WIDGETS[kind], values, strict=False):
                inputs.setdefault(name, value)
        graph[node_id] = {"class_type": kind, "inputs": inputs}
    return graph


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_id(value: Any) -> bool:
    """A link or node id as the editor writes them (a number or a string), usable as a key."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _through_reroutes(link: list[Any], by_id: dict[str, Any], links: dict[int, list[Any]]) -> list[Any]:
    for _ in range(_MAX_NODES):
        node = by_id.get(link[0])
        if not isinstance(node, dict) or node.get("type") != "Reroute":
            return link
        slots = [slot for slot in _list(node.get("inputs"))
                 if isinstance(slot, dict) and _is_id(slot.get("link")) and slot["link"] in links]  # fmt: skip
        if not slots:
            return link
        link = links[slots[0]["link"]]
    return link


# ---------------------------------------------------------------------------------- InvokeAI


def invokeai(metadata_text: str | None, legacy_text: str | None) -> Found:
    """Read InvokeAI 3+/4+ `invokeai_metadata`, or 2.x `sd-metadata` when that is all there is."""
    found = Found()
    if metadata_text is not None:
        data = _load_json(metadata_text, "invokeai_metadata", found)
        if isinstance(data, dict):
            _read_invoke(data, found)
            return found
        if data is not None:
            found.warnings.append(f"invokeai_metadata chunk is a JSON {type(data).__name__}, not an object")
    if legacy_text is not None:
        data = _load_json(legacy_text, "sd-metadata", found)
        if isinstance(data, dict):
            _read_invoke_legacy(data, found)
        elif data is not None:
            found.warnings.append(f"sd-metadata chunk is a JSON {type(data).__name__}, not an object")
    return found


def _read_invoke(data: dict[str, Any], found: Found) -> None:
    params = found.params
    params.update(data)  # everything verbatim; our names are added beside it
    _copy_typed(data, found, {"positive_prompt": "prompt", "negative_prompt": "negative_prompt"}, str)
    _copy_typed(data, found, {"steps": "steps", "seed": "seed", "width": "width", "height": "height"}, int)
    _copy_typed(data, found, {"cfg_scale": "cfg_scale"}, float)
    params.pop("positive_prompt", None)
    skip = _as_int(data.get("clip_skip"), "clip_skip", found) if "clip_skip" in data else None
    if skip is not None:
        params["clip_skip"] = skip + 1  # InvokeAI counts layers skipped (0 = none); A1111 counts from 1
    scheduler = data.get("scheduler")
    if isinstance(scheduler, str):
        karras = scheduler.endswith("_k")
        set_sampler(params, scheduler[:-2] if karras else scheduler, "karras" if karras else "")
    model = data.get("model")
    if isinstance(model, dict):
        name = model.get("model_name", model.get("name"))
        if isinstance(name, str):
            params["model_name"] = name
        _set_hash(params, model.get("hash"))
    elif isinstance(model, str):
        params["model_name"] = model


def _read_invoke_legacy(data: dict[str, Any], found: Found) -> None:
    params = found.params
    params.update({key: value for key, value in data.items() if key != "image"})
    image = data.get("image")
    if not isinstance(image, dict):
        found.warnings.append("sd-metadata chunk has no image object")
        return
    params.update({key: value for key, value in image.items() if key != "prompt"})
    prompt = image.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(part.get("prompt", "") for part in prompt if isinstance(part, dict)
                          and isinstance(part.get("prompt"), str))
    if isinstance(prompt, str):
        # InvokeAI 2.x put negative words in [square brackets] inside the prompt.
        negative = re.findall(r"\[([^\[\]]*)\]", prompt)
        params["prompt"] = re.sub(r"\s*\[[^\[\]]*\]", "", prompt).strip()
        params["negative_prompt"] = ", ".join(part.strip() for part in negative)
    else:
        found.warnings.append("sd-metadata chunk: prompt is not text")
    _copy_typed(image, found, {"steps": "steps", "seed": "seed", "width": "width", "height": "height"}, int)
    _copy_typed(image, found, {"cfg_scale": "cfg_scale"}, float)
    if isinstance(image.get("sampler"), str):
        set_sampler(params, image["sampler"], "")
    if isinstance(data.get("model_weights"), str):
        params["model_name"] = data["model_weights"]
    _set_hash(params, data.get("model_hash"))


def _set_hash(params: dict[str, Any], digest: Any) -> None:
    # A1111's "Model hash" is the first 10 hex digits of the file's sha256; InvokeAI 4 stores
    # blake3 hashes, which are not comparable and stay only in the verbatim model object.
    if isinstance(digest, str) and re.fullmatch(r"(sha256:)?[0-9a-fA-F]{64}", digest):
        params["model_hash"] = digest.split(":")[-1][:10].lower()


# ---------------------------------------------------------------------------------- helpers


def set_sampler(params: dict[str, Any], name: str, scheduler: str) -> None:
    """Our canonical sampler (e.g. 'DPM++ 2M Karras') from a ComfyUI/InvokeAI name, with the
    schedule kept as A1111's 'Schedule type' when it is not folded into the sampler name."""
    candidates = [f"{name}_{scheduler}"] if scheduler in ("karras", "sgm_uniform") else []
    for candidate in [*candidates, name]:
        try:
            params["sampler"] = canonical_sampler(candidate)
        except BadInput:
            continue
        if candidate == name and scheduler and scheduler != "normal":
            params["schedule_type"] = _SCHEDULE_TYPES.get(scheduler, scheduler)
        return
    params["sampler"] = name
    if scheduler and scheduler != "normal":
        params["schedule_type"] = _SCHEDULE_TYPES.get(scheduler, scheduler)


def _copy_typed(source: dict[str, Any], found: Found, names: dict[str, str], kind: type) -> None:
    for key, ours in names.items():
        if key not in source:
            continue
        if kind is int:
            value: Any = _as_int(source[key], key, found)
        elif kind is float:
            value = _as_float(source[key], key, found)
        else:
            value = source[key] if isinstance(source[key], str) else None
            if value is None:
                found.warnings.append(f"{key}={source[key]!r} is not text")
        if value is not None:
            found.params[ours] = value
        else:
            found.params.pop(ours, None)  # a wrong-typed value must not pass for a checked one


def _as_int(value: Any, name: str, found: Found) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        found.warnings.append(f"{name}={value!r} is not a whole number")
        return None
    return value


def _as_float(value: Any, name: str, found: Found) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        found.warnings.append(f"{name}={value!r} is not a number")
        return None
    return float(value)


def _load_json(text: str, chunk: str, found: Found) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        found.warnings.append(f"{chunk} chunk is not valid JSON: {exc}")
        return None
