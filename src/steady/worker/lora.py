"""Step 3 of steady.worker.recipe: an image's LoRAs on the pipeline, through diffusers' own loader
(peft underneath). Part of the worker (torch).

    warnings = apply_loras(pipe, held.loras, params)   # before encoding; [] when all went on

Each LoRA file is loaded once, as a peft adapter named after its hash, and kept while the images
that follow ask for it; each image sets the adapters' weights (text encoder and UNet apart) with
``set_adapters``. The adapters are never merged into the base weights, so taking them off gives
the base model's exact pixels back: an adapter the image does not ask for is deleted, and an
image with no LoRA (or only weight-0 ones) gets the pipeline with every adapter layer removed
(``unload_lora_weights``), the modules it was loaded with.

A file that diffusers cannot apply (its modules are not in this model, a shape does not fit) is
skipped with a warning that the image records; steady.request.check has already skipped the
ones it can tell from the file's header (another architecture, LoHa, LoKr).
"""

from __future__ import annotations

from typing import Any

from steady.params import ImageParams
from steady.worker.lorafuse import FusedLoras, fuse, signature
from steady.worker.strategy import is_out_of_memory


def adapter_name(entry: dict[str, Any]) -> str:
    """The peft adapter name of a LoRA entry of ImageParams.extra["loras"] (no dots allowed)."""
    return "lora_" + "".join(c for c in str(entry["hash"]) if c.isalnum())


def apply_loras(pipe: Any, loaded: dict[str, str], params: ImageParams, fused: FusedLoras | None = None) -> list[str]:
    """Put the LoRAs of ``params.extra["loras"]`` on ``pipe`` at their weights, and nothing else.
    ``loaded`` (adapter name -> file) is what is on the pipeline; it is kept up to date. With
    ``fused``, they are merged into the weights where that is cheap (steady.worker.lorafuse), and
    the same LoRAs at the same weights as the image before cost nothing. Returns one warning line
    per LoRA that could not be applied."""
    wanted = {adapter_name(e): e for e in params.extra.get("loras", []) if e["te"] or e["unet"]}
    if fused is not None and fused.signature:
        if set(wanted) <= set(loaded) and fused.signature == signature(*_weights(pipe, wanted)):
            return []  # already merged, at these weights
        fused.restore()
    if loaded and not wanted.keys() & loaded.keys():
        remove_loras(pipe, loaded)  # the base model's own modules back
    stale = [name for name in loaded if name not in wanted]
    if stale:
        pipe.delete_adapters(stale)
        for name in stale:
            del loaded[name]
    warnings = []
    for name, entry in wanted.items():
        if name in loaded:  # the same hash: the same tensors
            continue
        try:
            pipe.load_lora_weights(_source(entry, bool(params.extra.get("allow_pickle"))), adapter_name=name)
        except Exception as exc:  # noqa: BLE001 - any file diffusers cannot apply is skipped, and said so
            if is_out_of_memory(exc):
                raise  # the OOM retry (steady.worker.strategy) tries a thriftier placement
            warnings.append(f"<lora:{entry['name']}> skipped: diffusers cannot apply it to this model "
                            f"({type(exc).__name__}: {_first_line(exc)})")  # fmt: skip
            _forget(pipe, name)
            continue
        loaded[name] = entry["path"]
    names = [name for name in wanted if name in loaded]
    if not names:
        if loaded:
            remove_loras(pipe, loaded)
        return warnings
    names, weights = _weights(pipe, {name: wanted[name] for name in names})
    pipe.set_adapters(names, adapter_weights=weights)
    if fused is not None:
        fuse(pipe, fused, names, weights)
    return warnings


def _weights(pipe: Any, wanted: dict[str, dict[str, Any]]) -> tuple[list[str], list[dict[str, float]]]:
    """The adapters and, for each, its weight on each component it has layers in."""
    parts = pipe.get_list_adapters()  # {"unet": [names], "text_encoder": [names], ...}
    names = list(wanted)
    weights = [{part: (wanted[name]["unet"] if part == "unet" else wanted[name]["te"])
                for part, names_there in parts.items() if name in names_there} for name in names]  # fmt: skip
    return names, weights


def remove_loras(pipe: Any, loaded: dict[str, str]) -> None:
    """Every adapter layer off the pipeline: its modules are the ones it was loaded with."""
    pipe.unload_lora_weights()
    loaded.clear()


def _source(entry: dict[str, Any], allow_pickle: bool) -> Any:
    """What load_lora_weights reads: the .safetensors path, or a pickle's state dict loaded with
    torch.load(weights_only=True) (only when --allow-pickle said so; check refuses it otherwise)."""
    path = entry["path"]
    if path.lower().endswith(".safetensors"):
        return path
    from steady.worker.tensorfile import pickled_state

    return pickled_state(path, allow_pickle)


def _forget(pipe: Any, name: str) -> None:
    """Remove what a failed load left of adapter ``name`` (it may have reached some components)."""
    present = {n for names in pipe.get_list_adapters().values() for n in names}
    if name in present:
        pipe.delete_adapters([name])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 200 else line[:200] + "…"
