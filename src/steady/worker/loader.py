"""Load a Stable Diffusion model into a diffusers pipeline, fully offline. Part of the worker.

    load_pipeline(info, device, dtype, allow_pickle=False, prediction_type=None)

1. Diffusers folder: DiffusionPipeline.from_pretrained(folder, local_files_only=True).
2. Single file (.safetensors; a pickle only with allow_pickle): the config folder is the
   shipped full-size config of the family with the shape-derived `info.overrides` applied,
   written once under <cache_dir>/configs/. Each component is then built by diffusers' own
   single-file code (UNet2DConditionModel/AutoencoderKL.from_single_file and
   create_diffusers_clip_model_from_ldm, i.e. convert_ldm_unet_checkpoint,
   convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint) with
   `config=` pointing at that folder. This is what StableDiffusionPipeline.from_single_file does
   internally, done component by component so that (a) a pickle's already-loaded state dict goes
   the same way and (b) only one component's tensors are read out of the file at a time, each
   tensor read on its own straight into the target dtype (steady.worker.tensorfile: not
   memory-mapped, so the file's pages do not count in the worker's RSS) and handed to diffusers,
   which keeps it as the parameter: peak RSS stays within a tensor or two of the loaded weights.
3. SD 2.x single files do not say whether they predict noise (512 base) or v (768): unless
   `prediction_type` is given, the UNet is run once on a fixed input, as A1111 does
   (modules/sd_models_config.py, is_using_v_parameterization_for_sd2).

Nothing here may reach the network: every diffusers/transformers call gets local_files_only=True
and a local folder, and the hub is never named.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from steady.config import Settings
from steady.config import settings as default_settings
from steady.errors import BadInput, ModelError
from steady.models import shipped
from steady.models.detect import UNET, ModelInfo, info_from_shapes, pickle_refusal
from steady.worker.tensorfile import SafetensorsReader, cast

log = logging.getLogger(__name__)

PREDICTION_TYPES = ("epsilon", "v_prediction")

# Where each component's weights live in an original-layout checkpoint.
_PREFIXES = {
    "sd1": {"unet": UNET, "vae": "first_stage_model.", "text_encoder": "cond_stage_model.transformer."},
    "sd2": {"unet": UNET, "vae": "first_stage_model.", "text_encoder": "cond_stage_model.model."},
    "sdxl": {
        "unet": UNET,
        "vae": "first_stage_model.",
        "text_encoder": "conditioner.embedders.0.transformer.",
        "text_encoder_2": "conditioner.embedders.1.model.",
    },
}


def _dtype_kw() -> str:
    """diffusers >= 0.42 calls the argument `dtype` and warns on `torch_dtype`; older ones know
    only `torch_dtype` (pyproject allows >= 0.36)."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def load_pipeline(
    info: ModelInfo,
    device: str,
    dtype: torch.dtype,
    allow_pickle: bool = False,
    prediction_type: str | None = None,
    settings: Settings | None = None,
) -> Any:
    """A StableDiffusionPipeline / StableDiffusionXLPipeline on `device` in `dtype`."""
    if prediction_type is not None and prediction_type not in PREDICTION_TYPES:
        raise BadInput("prediction_type", prediction_type, f"expected one of {', '.join(PREDICTION_TYPES)}")
    t0 = time.perf_counter()
    if info.format == "diffusers":
        pipe = _load_folder(info, dtype)
    elif info.format in ("safetensors", "pickle"):
        if info.format == "pickle" and not allow_pickle:
            raise pickle_refusal(info)
        pipe = _load_single_file(info, device, dtype, prediction_type, settings or default_settings())
    else:
        raise ModelError("model", str(info.path), f"unknown model format {info.format!r}")
    if prediction_type is not None:
        set_prediction_type(pipe, prediction_type)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    log.info(
        "loaded %s (%s, %s) on %s as %s in %.1fs; prediction_type=%s",
        info.name, info.format, type(pipe).__name__, device, dtype, time.perf_counter() - t0,
        pipe.scheduler.config.get("prediction_type"),
    )
    return pipe


def set_prediction_type(pipe: Any, prediction_type: str) -> None:
    if pipe.scheduler.config.get("prediction_type") != prediction_type:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type=prediction_type)


# ---------------------------------------------------------------------------------------------
def _load_folder(info: ModelInfo, dtype: torch.dtype) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    try:
        if info.arch == "sdxl":
            return StableDiffusionXLPipeline.from_pretrained(
                info.path, local_files_only=True, add_watermarker=False, **{_dtype_kw(): dtype}
            )
        return StableDiffusionPipeline.from_pretrained(
            info.path, local_files_only=True, **{_dtype_kw(): dtype}, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
        )
    except (OSError, ValueError) as e:
        raise ModelError("model", str(info.path), f"cannot load diffusers folder: {_first_line(e)}") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
class _Checkpoint:
    """Tensors of one original-layout checkpoint, handed out one component at a time."""

    def __init__(self, info: ModelInfo):
        self.path = info.path
        self._file: SafetensorsReader | None = None
        self._sd: dict[str, torch.Tensor] | None = None
        if info.format == "safetensors":
            self._file = SafetensorsReader(info.path)
            self.keys = self._file.keys()
        else:
            self._sd = _load_pickle(info.path)
            self.keys = list(self._sd)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        if self._file is not None:
            return {k: self._file.shape(k) for k in self.keys}
        return {k: tuple(v.shape) for k, v in self._sd.items()}

    def part(self, prefix: str, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """One component's tensors, each read from the file and cast to ``dtype`` on its own
        (steady.worker.tensorfile), so that only the tensor in hand is ever held in the file's
        dtype as well as the target's: no whole-component copy in the file's dtype."""
        keys = [k for k in self.keys if k.startswith(prefix)]
        if self._file is not None:
            return {k: self._file.get(k, dtype) for k in keys}
        return {k: cast(self._sd[k], dtype) for k in keys}

    def get(self, key: str) -> torch.Tensor | None:
        if key not in self.keys:
            return None
        return self._file.get(key) if self._file is not None else self._sd[key]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._sd = None


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    import zipfile

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # unpickling errors come in many types; report them as one
        raise ModelError("model", str(path), f"cannot load pickle checkpoint: {_first_line(e)}") from e
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ModelError("model", str(path), "pickle does not contain a state dict")
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _check_loaded(model: torch.nn.Module, component: str, path: Path) -> None:
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if missing:
        raise ModelError(
            "model", str(path), f"checkpoint lacks {len(missing)} {component} weights (first: {missing[0]}); incomplete file?"
        )


def _load_single_file(
    info: ModelInfo, device: str, dtype: torch.dtype, prediction_type: str | None, settings: Settings
) -> Any:
    from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    # 1. Open the checkpoint; a pickle's shapes are known only now.
    ckpt = _Checkpoint(info)
    try:
        if info.format == "pickle":
            info = info_from_shapes(info.path, "pickle", ckpt.shapes(), info.size_bytes)
        arch = info.arch
        prefixes = _PREFIXES[arch]

        # 2. Config folder: shipped config + shape overrides (cached on disk).
        pred = prediction_type or info.prediction_type
        cfg = shipped.materialize(shipped.variant_for(arch, pred), info.overrides, settings.cache_dir)
        common = {"config": str(cfg), "local_files_only": True}
        dkw = {_dtype_kw(): dtype}

        # 3. UNet first: SD2 needs it to tell epsilon from v.
        unet = _component(
            lambda sd: UNet2DConditionModel.from_single_file(sd, subfolder="unet", **common, **dkw),
            ckpt, prefixes["unet"], "unet", info, cfg, dtype,
        )
        if arch == "sd2" and pred is None:
            pred = "v_prediction" if is_v_prediction(unet, device) else "epsilon"
            log.info("%s: SD2 prediction type by A1111's check: %s", info.name, pred)
            if pred == "v_prediction":
                cfg = shipped.materialize("sd2v", info.overrides, settings.cache_dir)
                common["config"] = str(cfg)
                # 768-v config: default size 96 latents; attention in float32 (SD 2.1 overflows
                # in fp16 otherwise). The UNet is built already, so set both on it.
                v_unet = shipped.load_component_config("sd2v", "unet")
                unet.register_to_config(sample_size=v_unet["sample_size"], upcast_attention=v_unet["upcast_attention"])
                for m in unet.modules():
                    if hasattr(m, "upcast_attention"):
                        m.upcast_attention = v_unet["upcast_attention"]
        # 4. VAE and text encoders, each from its own slice of the checkpoint.
        vae = _component(
            lambda sd: AutoencoderKL.from_single_file(sd, subfolder="vae", **common, **dkw),
            ckpt, prefixes["vae"], "vae", info, cfg, dtype,
        )
        text_encoder = _component(
            lambda sd: create_diffusers_clip_model_from_ldm(
                CLIPTextModel, sd, subfolder="text_encoder", torch_dtype=dtype, **common
            ),
            ckpt, prefixes["text_encoder"], "text_encoder", info, cfg, dtype,
        )
        if arch == "sdxl":
            text_encoder_2 = _component(
                lambda sd: create_diffusers_clip_model_from_ldm(
                    CLIPTextModelWithProjection, sd, subfolder="text_encoder_2", torch_dtype=dtype, **common
                ),
                ckpt, prefixes["text_encoder_2"], "text_encoder_2", info, cfg, dtype,
            )
    finally:
        ckpt.close()

    # 5. Tokenizers and scheduler from the config folder; assemble.
    scheduler = _scheduler(cfg)
    tokenizer = CLIPTokenizer.from_pretrained(cfg, subfolder="tokenizer", local_files_only=True)
    if arch == "sdxl":
        tokenizer_2 = CLIPTokenizer.from_pretrained(cfg, subfolder="tokenizer_2", local_files_only=True)
        return StableDiffusionXLPipeline(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
            add_watermarker=False,
        )
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def _component(build, ckpt: _Checkpoint, prefix: str, name: str, info: ModelInfo, cfg: Path,
               dtype: torch.dtype | None = None) -> torch.nn.Module:  # fmt: skip
    t0 = time.perf_counter()
    part = ckpt.part(prefix, dtype)
    if not part:
        raise ModelError("model", str(info.path), f"checkpoint has no {name} weights ({prefix}*)")
    try:
        model = build(part)
    except ModelError:
        raise
    except (KeyError, ValueError, RuntimeError, OSError) as e:
        # A weight the conversion did not find stays on the meta device and fails on the
        # first copy; say which one rather than "Cannot copy out of meta tensor".
        why = _missing_weights(name, part, cfg) if "meta" in str(e) else None
        raise ModelError("model", str(info.path), why or f"cannot load {name}: {_first_line(e)}") from e
    finally:
        del part
    _check_loaded(model, name, info.path)
    log.debug("%s: %s loaded in %.2fs", info.name, name, time.perf_counter() - t0)
    return model


def _missing_weights(name: str, part: dict[str, torch.Tensor], cfg: Path) -> str | None:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    if name not in ("unet", "vae"):
        return None
    cls, convert = (UNet2DConditionModel, convert_ldm_unet_checkpoint) if name == "unet" else (
        AutoencoderKL, convert_ldm_vae_checkpoint)
    config = cls.load_config(cfg, subfolder=name, local_files_only=True)
    with init_empty_weights():
        expected = set(cls.from_config(config).state_dict())
    missing = sorted(expected - set(convert(part, config)))
    if not missing:
        return None
    return f"checkpoint lacks {len(missing)} {name} weights (first: {missing[0]}); incomplete file?"


def _scheduler(cfg: Path) -> Any:
    import diffusers

    conf = json.loads((cfg / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    cls = getattr(diffusers, conf["_class_name"])
    return cls.from_config(conf)


@torch.no_grad()
def is_v_prediction(unet: torch.nn.Module, device: str) -> bool:
    """A1111's check (is_using_v_parameterization_for_sd2): at t=999 on a constant 0.5 latent
    with a constant 0.5 context, an epsilon model's output minus the input averages near 0,
    a v model's well below -1. One UNet call on an 8x8 latent (64x64 pixels): cheap.
    For random-weight test models the answer is arbitrary; pass prediction_type instead."""
    moved = str(unet.device) != str(torch.device(device))
    if moved:
        unet.to(device)
    p = next(unet.parameters())
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, device=p.device, dtype=p.dtype)
    ctx = torch.full((1, 2, unet.config.cross_attention_dim), 0.5, device=p.device, dtype=p.dtype)
    t = torch.tensor([999], device=p.device)
    out = unet(x, t, encoder_hidden_states=ctx).sample
    return (out.float() - x.float()).mean().item() < -1
