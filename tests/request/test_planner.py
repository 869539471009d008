"""Preflight planner: footprints, estimates, the pinned table of choices, refusals, the ladder, the
out-of-memory retry (simulated) and apply_plan on a tiny CPU pipeline.

The table below is the one in docs/planner.md; a change to the estimates that moves a choice
must change both, on purpose.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from steady.errors import BadInput
from steady.request.machine import GIB, MIB, Gpu, Machine
from steady.request import planner as P
from steady.request.planner import (
    InsufficientMemory,
    OomEvent,
    OutOfMemory,
    Plan,
    estimate,
    footprint_for_arch,
    next_thriftier,
    plan,
)
from steady.worker import strategy as S
from steady.worker.strategy import run_with_oom_retry

SD1, SDXL = footprint_for_arch("sd1"), footprint_for_arch("sdxl")


def machine(vram_gib: float = 0, ram_gib: float = 16, *, idle: int = 8, platform: str = "linux", **kw) -> Machine:
    """An example desktop: a quarter of RAM in use, 0.3 GiB of VRAM taken by the display,
    4 physical / 8 logical cores, swap half of RAM."""
    gpus = [Gpu(0, "Example GPU", int(vram_gib * GIB), int((vram_gib - 0.3) * GIB))] if vram_gib else []
    base = dict(platform=platform, cpu_logical=8, cpu_physical=4, cpu_usable=8, cpu_idle=idle, cpu_bf16=False,
                ram_total=int(ram_gib * GIB), ram_available=int(ram_gib * 0.75 * GIB),
                swap_total=int(ram_gib / 2 * GIB), swap_free=int(ram_gib / 2 * GIB), gpus=gpus)
    base.update(kw)
    return Machine(**base)


# --- footprints and estimates --------------------------------------------------------------------
def test_known_footprints_are_the_shipped_configs_counts():
    assert SD1.total_params == 859_520_964 + 83_653_863 + 123_060_480
    assert SDXL.params["text_encoder_2"] == 694_659_840
    assert SDXL.vae_upcast and not SD1.vae_upcast
    assert estimate(SDXL, 1024, 1024, 1, "float32").weights["unet"] / 1e9 == pytest.approx(10.27, abs=0.01)


def test_params_from_shapes_counts_components_and_ignores_ema():
    shapes = {
        "model.diffusion_model.a.weight": (10, 10),
        "model_ema.diffusionmodela": (10, 10),
        "first_stage_model.b": (3,),
        "cond_stage_model.transformer.c": (2, 2),
    }
    assert P.params_from_shapes(shapes, "sd1") == {"unet": 100, "vae": 3, "text_encoder": 4}


def test_footprint_from_single_file_and_folder_counts_exactly(tmp_path):
    from steady.models.detect import inspect_model
    from tests.fixtures.tiny_models import make_tiny_pipeline, save_tiny_folder, save_tiny_single_file

    pipe = make_tiny_pipeline("sd1")
    real = {c: sum(p.numel() for p in getattr(pipe, c).parameters()) for c in ("unet", "vae", "text_encoder")}
    single = P.footprint_from_info(inspect_model(save_tiny_single_file("sd1", tmp_path / "m.safetensors")))
    folder = P.footprint_from_info(inspect_model(save_tiny_folder("sd1", tmp_path / "folder")))
    assert single.params == real == folder.params
    assert single.source == "safetensors header" and folder.source == "folder headers"
    import torch
    from safetensors.torch import load_file

    torch.save({"state_dict": load_file(tmp_path / "m.safetensors")}, tmp_path / "m.ckpt")
    pickled = P.footprint_from_info(inspect_model(tmp_path / "m.ckpt"))
    assert pickled.params == real and pickled.source == "pickle tensor shapes"  # counted, not guessed


def test_an_unknown_architecture_gets_a_labelled_guess():
    info = SimpleNamespace(format="safetensors", arch=None, size_bytes=int(7.7e9), path="x.safetensors", overrides={})
    fp = P.footprint_from_info(info)
    assert fp.arch == "unknown" and "guess" in fp.source
    assert fp.total_params == pytest.approx(7.7e9 / 4, rel=0.01)


def test_estimate_formulas():
    e = estimate(SD1, 512, 512, 1, "float16")
    # ComfyUI: batch (x2 for guidance) * latent pixels * bytes * 0.01 MiB * factor
    assert e.unet_step == int(2 * 64 * 64 * 2 * 0.01 * MIB)
    assert e.vae_decode == 2178 * 512 * 512 * 2
    assert e.attention == 2 * 2 * 8 * 4096**2 * 2  # scores + softmax, 8 heads, 4096 tokens
    assert e.attention_sliced == 2 * 4 * 4096**2 * 2
    assert estimate(SD1, 512, 512, 1, "float32", device_kind="cpu").vae_decode == 1000 * 512 * 512 * 4
    xl = estimate(SDXL, 1024, 1024, 1, "float16")
    assert xl.vae_dtype == "float32" and xl.vae_weights == SDXL.params["vae"] * 4  # force_upcast
    assert estimate(SDXL, 1024, 1024, 1, "bfloat16").vae_dtype == "bfloat16"
    assert xl.vae_decode_tiled < xl.vae_decode / 3
    with pytest.raises(BadInput) as err:
        estimate(SD1, 512, 512, 1, "int8")
    assert err.value.argument == "dtype"


# --- the pinned table ----------------------------------------------------------------------------
CASES = {"sd15-512": (SD1, 512, 1), "sdxl-1024": (SDXL, 1024, 1), "sd15-1024x4": (SD1, 1024, 4)}
# (VRAM GiB, RAM GiB) -> case -> "strategy dtype [+tiling]" or "refused:<argument>"
TABLE = {
    (0, 8): {"sd15-512": "cpu bfloat16", "sdxl-1024": "refused:model", "sd15-1024x4": "refused:batch_size"},
    (0, 16): {"sd15-512": "cpu float32", "sdxl-1024": "cpu bfloat16", "sd15-1024x4": "cpu float32 +tiling"},
    (4, 16): {"sd15-512": "model-offload float16", "sdxl-1024": "sequential-offload float16 +tiling",
              "sd15-1024x4": "refused:batch_size"},
    (6, 16): {"sd15-512": "gpu float16", "sdxl-1024": "sequential-offload float16 +tiling",
              "sd15-1024x4": "model-offload float16 +tiling"},
    (8, 16): {"sd15-512": "gpu float16", "sdxl-1024": "model-offload float16 +tiling",
              "sd15-1024x4": "gpu+vae-tiling float16 +tiling"},
    (12, 32): {"sd15-512": "gpu float16", "sdxl-1024": "gpu+vae-tiling float16 +tiling",
               "sd15-1024x4": "gpu+vae-tiling float16 +tiling"},
    (24, 64): {"sd15-512": "gpu float16", "sdxl-1024": "gpu float16", "sd15-1024x4": "gpu float16"},
}


def _choice(fp, side, batch, m) -> str:
    try:
        p = plan(fp, m, width=side, height=side, batch=batch)
    except InsufficientMemory as exc:
        return f"refused:{exc.argument}"
    return f"{p.strategy} {p.dtype}" + (" +tiling" if p.vae_tiling else "")


@pytest.mark.parametrize("vram,ram", list(TABLE))
def test_pinned_table(vram, ram):
    m = machine(vram, ram)
    got = {case: _choice(fp, side, batch, m) for case, (fp, side, batch) in CASES.items()}
    assert got == TABLE[(vram, ram)]


def test_chosen_plans_fit_their_budgets_and_say_why():
    p = plan(SDXL, machine(8, 16), width=1024, height=1024)
    assert p.fits and p.peak_vram <= p.vram_budget and p.peak_ram <= p.ram_budget
    assert p.device == "cuda" and p.threads is None
    assert "model CPU offload" in p.reason and "would need" in p.reason
    cpu = plan(SD1, machine(0, 16, idle=3), width=512, height=512)
    assert cpu.threads == 4 and cpu.device == "cpu"  # the physical cores, whatever the load
    assert plan(SD1, machine(0, 16, idle=1), width=512, height=512).threads == 4  # pixels do not follow the load
    assert plan(SD1, machine(0, 16, cpu_usable=2), width=512, height=512).threads == 2  # but only cores we may use


def test_another_vae_is_counted_beside_the_models_own():
    """--vae keeps the model's VAE while the other is on (steady.worker.vae): one VAE's weights more,
    in RAM on the CPU and in VRAM on the GPU."""
    kept = P.with_kept_vae(SD1)
    assert kept.params["vae_kept"] == SD1.params["vae"] and kept.total_params == SD1.total_params + SD1.params["vae"]
    vae_bytes = SD1.params["vae"] * 4
    cpu, cpu_kept = (plan(fp, machine(0, 16), width=512, height=512, dtype="float32") for fp in (SD1, kept))
    assert cpu_kept.peak_ram - cpu.peak_ram == vae_bytes
    gpu, gpu_kept = (plan(fp, machine(12, 32), width=512, height=512) for fp in (SD1, kept))
    assert gpu.strategy == gpu_kept.strategy == "gpu" and gpu_kept.peak_vram - gpu.peak_vram == SD1.params["vae"] * 2


# --- refusals ------------------------------------------------------------------------------------
def test_refusal_names_model_when_no_size_fits():
    with pytest.raises(InsufficientMemory) as err:
        plan(SDXL, machine(0, 8), width=1024, height=1024)
    e = err.value
    assert e.argument == "model" and e.resource == "RAM" and e.need > e.have and e.fits_at is None
    assert "needs about 8.0 GiB of RAM" in str(e) and "this machine has 5.5 GiB available" in str(e)
    assert "weights alone are 6.5 GiB in bfloat16" in str(e)


def test_refusal_suggests_a_size_that_fits():
    m = machine(4, 16)
    with pytest.raises(InsufficientMemory) as err:
        plan(SDXL, m, width=2048, height=1536, device="cuda")
    e = err.value
    assert e.argument == "width" and e.value == 2048 and e.resource == "VRAM"
    fit = e.fits_at
    assert f"at {fit.width}x{fit.height} it would fit" in str(e)
    assert fit.width % 8 == 0 and fit.height % 8 == 0 and fit.width / fit.height == pytest.approx(4 / 3, rel=0.02)
    assert plan(SDXL, m, width=fit.width, height=fit.height).fits
    with pytest.raises(InsufficientMemory):  # the next size up (64 px on the long side) does not
        plan(SDXL, m, width=fit.width + 64, height=round((fit.width + 64) * 3 / 4 / 8) * 8)


def test_refusal_suggests_fewer_per_batch():
    with pytest.raises(InsufficientMemory) as err:
        plan(SD1, machine(0, 8), width=1024, height=1024, batch=4)
    e = err.value
    assert e.argument == "batch_size" and e.fits_batch == 3 and "with 3 per batch it would fit" in str(e)
    assert plan(SD1, machine(0, 8), width=1024, height=1024, batch=3).fits


def test_gpu_machine_refuses_rather_than_silently_using_the_cpu():
    m = machine(1, 64)
    with pytest.raises(InsufficientMemory) as err:
        plan(SD1, m, width=512, height=512)
    assert "--device cpu" in str(err.value)
    assert plan(SD1, m, width=512, height=512, device="cpu").strategy == "cpu"


def test_explicit_device_and_dtype_are_checked():
    with pytest.raises(BadInput) as err:
        plan(SD1, machine(0, 16), width=512, height=512, device="cuda")
    assert err.value.argument == "device"
    with pytest.raises(BadInput) as err:
        plan(SD1, machine(0, 16), width=512, height=512, device="cpu", dtype="float16")
    assert err.value.argument == "dtype"
    assert plan(SD1, machine(8, 16), width=512, height=512, dtype="float32").dtype == "float32"
    with pytest.raises(BadInput) as err:
        plan(SD1, machine(0, 16), width=512, height=512, dtype="float16")  # auto device, no GPU
    assert err.value.argument == "dtype"
    with pytest.raises(BadInput) as err:
        plan(SD1, machine(0, 16), width=512, height=512, device="mps")
    assert err.value.argument == "device"


def test_apple_mps_uses_unified_memory_and_never_offloads():
    p = plan(SDXL, machine(0, 32, mps=True), width=1024, height=1024)
    assert (p.device, p.dtype, p.strategy) == ("mps", "float16", "gpu")
    assert p.peak_ram > p.peak_vram  # the GPU's share comes out of RAM
    assert plan(SDXL, machine(0, 16, mps=True), width=1024, height=1024).strategy == "gpu+vae-tiling"
    assert plan(SD1, machine(0, 8, mps=True), width=512, height=512, device="cpu").device == "cpu"


def test_without_sdpa_attention_slicing_is_used():
    p = plan(SD1, machine(4, 16), width=768, height=768, sdpa=False)
    assert p.attention_slicing
    assert not plan(SD1, machine(24, 64), width=768, height=768).attention_slicing  # never with SDPA


# --- the ladder ------------------------------------------------------------------------------------
def _ladder(p: Plan) -> list[str]:
    out = []
    while p is not None:
        out.append(p.strategy + ("+tiles" if p.vae_tiling else ""))
        p = next_thriftier(p)
    return out


def test_next_thriftier_walks_the_ladder_and_skips_steps_that_change_nothing():
    assert _ladder(plan(SDXL, machine(24, 64), width=1024, height=1024)) == [
        "gpu", "gpu+vae-tiling+tiles", "model-offload", "model-offload+tiles", "sequential-offload+tiles"]
    assert _ladder(plan(SD1, machine(24, 64), width=512, height=512)) == ["gpu", "model-offload", "sequential-offload"]
    assert next_thriftier(plan(SD1, machine(0, 16), width=512, height=512)) is None  # CPU: no ladder


def test_plan_round_trips_as_a_dict():
    p = plan(SDXL, machine(8, 16), width=1024, height=1024)
    assert Plan.from_dict(p.to_dict()) == p
    capped = plan(SDXL, machine(24, 64), width=1024, height=1024, vram_limit=6 * GIB)
    assert Plan.from_dict(capped.to_dict()) == capped and capped.vram_limit == 6 * GIB


def test_a_vram_limit_plans_as_on_a_card_that_size_and_the_retry_keeps_it():
    """config's vram_limit_gib on a 24 GiB card: the plan fits within the cap (an offload rung for
    SDXL at 1024 under 4 GiB), carries it for the worker, and so does the out-of-memory retry."""
    free = plan(SDXL, machine(24, 64), width=1024, height=1024)
    assert free.strategy == "gpu" and free.vram_limit is None
    for cap_gib in (6, 4):
        cap = cap_gib * GIB
        capped = plan(SDXL, machine(24, 64), width=1024, height=1024, vram_limit=cap)
        assert capped.strategy != "gpu" and capped.peak_vram <= capped.vram_budget < cap and capped.vram_limit == cap
        assert next_thriftier(P.dataclasses.replace(free, vram_limit=cap)).vram_limit == cap
    on_cpu = plan(SD1, machine(0, 16), width=512, height=512, vram_limit=4 * GIB)
    assert on_cpu.device == "cpu" and on_cpu.vram_limit is None  # nothing to cap on the CPU
    S.apply_plan(FakePipe(), P.dataclasses.replace(on_cpu, vram_limit=4 * GIB))  # and nothing done


# --- out-of-memory retry (simulated) ---------------------------------------------------------------
class OutOfMemoryError(RuntimeError):
    """Stands in for torch.OutOfMemoryError: matched by class name, like the real one."""


def test_oom_is_retried_once_one_rung_thriftier_and_reported():
    p = plan(SDXL, machine(24, 64), width=1024, height=1024)
    calls, events = [], []

    def job(q: Plan) -> str:
        calls.append(q.strategy)
        if len(calls) == 1:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB\nmore detail")
        return "image"

    assert run_with_oom_retry(job, p, events.append) == "image"
    assert calls == ["gpu", "gpu+vae-tiling"]
    assert events == [OomEvent("gpu", "gpu+vae-tiling", "CUDA out of memory. Tried to allocate 8.00 GiB",
                               1024, 1024, 1, "cuda")]


def test_second_oom_is_a_clear_error():
    p = plan(SD1, machine(24, 64), width=512, height=512)

    def job(q: Plan) -> str:
        raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")  # older torch's form

    with pytest.raises(OutOfMemory) as err:
        run_with_oom_retry(job, p)
    assert "with 'gpu' and again with 'model-offload'" in str(err.value)
    last = next_thriftier(next_thriftier(p))
    with pytest.raises(OutOfMemory, match="thriftiest strategy"):
        run_with_oom_retry(job, last)


def test_other_errors_are_not_retried():
    calls = []

    def job(q: Plan) -> str:
        calls.append(q)
        raise ValueError("bad prompt")

    with pytest.raises(ValueError):
        run_with_oom_retry(job, plan(SD1, machine(24, 64), width=512, height=512))
    assert len(calls) == 1


def test_real_torch_oom_class_is_recognised():
    import torch

    assert S.is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    wrapped = RuntimeError("step failed")
    wrapped.__cause__ = torch.OutOfMemoryError("x")
    assert S.is_out_of_memory(wrapped) and not S.is_out_of_memory(RuntimeError("other"))


# --- applying a plan ---------------------------------------------------------------------------------
def test_apply_plan_sets_cpu_flags_on_a_tiny_pipeline():
    import torch

    from tests.fixtures.tiny_models import make_tiny_pipeline

    pipe = make_tiny_pipeline("sd1")
    threads = torch.get_num_threads()
    p = plan(SD1, machine(0, 64, cpu_physical=1), width=1024, height=1024, batch=2, sdpa=False)
    try:
        done = S.apply_plan(pipe, P.dataclasses.replace(p, vae_tiling=True, vae_slicing=True))
        assert torch.get_num_threads() == 1 and "threads=1" in done
        assert pipe.vae.use_tiling and pipe.vae.use_slicing
        assert pipe.vae.tile_sample_min_size == 512
        assert pipe.vae.tile_latent_min_size == 512 // 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        kinds = {type(proc).__name__ for proc in pipe.unet.attn_processors.values()}
        assert kinds == {"SlicedAttnProcessor"}
        plain = P.dataclasses.replace(p, attention_slicing=False, vae_slicing=False, vae_tiling=False, threads=None)
        S.apply_plan(pipe, plain)  # a reused pipeline drops the earlier plan's flags
        assert not pipe.vae.use_tiling and not pipe.vae.use_slicing
        assert "SlicedAttnProcessor" not in {type(x).__name__ for x in pipe.unet.attn_processors.values()}
    finally:
        torch.set_num_threads(threads)


class FakeVae:
    config = SimpleNamespace(block_out_channels=[1, 2, 3, 4])
    use_tiling = use_slicing = False

    def enable_tiling(self): self.use_tiling = True
    def disable_tiling(self): self.use_tiling = False
    def enable_slicing(self): self.use_slicing = True
    def disable_slicing(self): self.use_slicing = False


class FakePipe:
    def __init__(self):
        self.calls = []
        self.vae = FakeVae()
        self.unet = SimpleNamespace(attn_processors={})

    def __getattr__(self, name):
        return lambda *a, **kw: self.calls.append((name, kw))


@pytest.mark.parametrize("strategy,call", [("model-offload", "enable_model_cpu_offload"),
                                           ("sequential-offload", "enable_sequential_cpu_offload"), ("gpu", "to")])
def test_apply_plan_places_the_pipeline_once(strategy, call):
    p = P.dataclasses.replace(plan(SDXL, machine(8, 16), width=1024, height=1024), strategy=strategy)
    pipe = FakePipe()
    S.apply_plan(pipe, p)
    assert [c[0] for c in pipe.calls] == [call]
    assert pipe.vae.use_tiling == p.vae_tiling and pipe.vae.tile_sample_min_size == 512


def test_planner_imports_and_plans_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from steady.request.machine import Machine\n"
        "from steady.request.planner import plan, footprint_for_arch\n"
        "m = Machine('linux', 4, 2, 4, 4, None, 16 << 30, 12 << 30, 0, 0)\n"
        "print(plan(footprint_for_arch('sd1'), m, width=512, height=512).strategy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cpu"


@pytest.mark.parametrize("native", [False, True])
def test_sdxl_on_a_16_gb_machine_without_a_gpu_runs_in_bfloat16_and_says_why(native):
    """About 7 GB of weights in bfloat16 instead of 13 in float32: planned on the CPU, not refused
    and not left to swap; the reason says why (float32 would not fit) where bfloat16 is not
    already this CPU's choice. The load's own peak counts (one tensor at a time: LOAD_OVERHEAD)."""
    from steady.request.planner import LOAD_OVERHEAD, RUNTIME_RAM_CPU

    m = machine(0, 16, cpu_bf16=native, swap_total=0, swap_free=0)
    p = plan(SDXL, m, width=1024, height=1024)
    assert (p.device, p.dtype, p.strategy, p.fits) == ("cpu", "bfloat16", "cpu", True)
    weights = estimate(SDXL, 1024, 1024, 1, "bfloat16", device_kind="cpu").weights_total
    assert 6.4 * GIB < weights < 6.6 * GIB
    assert RUNTIME_RAM_CPU + weights + LOAD_OVERHEAD <= p.peak_ram <= p.ram_budget
    assert ("float32 would need about" in p.reason) is (not native)
