"""`steady doctor`: this machine, the memory plan for the two common models, and what to fix.

    steady doctor           # readable
    steady doctor --json    # {"machine": {...}, "plans": [...], "warnings": [...]}

Always exits 0: it reports, it does not judge. The plans are the planner's estimates
(docs/planner.md), for SD 1.5 at 512x512 and SDXL at 1024x1024, one image per batch.
"""

from __future__ import annotations

import json
from typing import Any

import click

CASES = (
    {"label": "SD 1.5 at 512x512", "arch": "sd1", "side": 512},
    {"label": "SDXL at 1024x1024", "arch": "sdxl", "side": 1024},
)


def doctor_report() -> dict[str, Any]:
    """Probe, plan the two cases, collect warnings: the --json payload."""
    from steady.config import settings
    from steady.request.devices import backend_reason, choose_dtype, dtype_reason
    from steady.request.machine import describe, machine_warnings, probe_machine
    from steady.request.planner import InsufficientMemory, footprint_for_arch, plan

    cfg = settings()
    limit, backend = cfg.vram_limit, cfg.backend  # config.toml read once, not per plan
    machine = probe_machine()
    # What `--device auto --dtype auto` picks here, and why (as steady.request.check decides it).
    device = "cuda" if machine.usable_gpus() else ("mps" if machine.mps else "cpu")
    dtype = choose_dtype("auto", device, machine.cpu_bf16)
    plans = []
    for case in CASES:
        entry: dict[str, Any] = {"model": case["label"], "plan": None, "refused": None}
        try:
            p = plan(footprint_for_arch(case["arch"]), machine, width=case["side"], height=case["side"],
                     vram_limit=limit)  # fmt: skip
        except InsufficientMemory as exc:
            entry["refused"] = exc.why
        else:
            entry["plan"] = {k: v for k, v in p.to_dict().items() if k != "footprint"}
        plans.append(entry)
    return {
        "machine": machine.to_dict(),
        "machine_lines": describe(machine),
        "dtype": {"device": device, "dtype": dtype, "reason": dtype_reason("auto", device, machine.cpu_bf16)},
        "backend": {"backend": backend, "reason": backend_reason(backend)},
        "plans": plans,
        "warnings": machine_warnings(machine),
    }


def _plan_line(entry: dict[str, Any]) -> str:
    p = entry["plan"]
    if p is None:
        return f"{entry['model']}: refused: {entry['refused']}"
    capped = f" (within vram_limit_gib = {p['vram_limit'] / 2**30:g})" if p.get("vram_limit") else ""
    return f"{entry['model']}: {p['strategy']}{capped}\n      {p['reason']}"


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the machine, plans and warnings as JSON.")
def doctor_command(as_json: bool) -> None:
    """Show this machine (GPU, VRAM, RAM, swap), the memory strategy steady would use for SD 1.5
    at 512x512 and SDXL at 1024x1024, and warnings that matter on small machines."""
    report = doctor_report()
    if as_json:
        click.echo(json.dumps({k: v for k, v in report.items() if k != "machine_lines"}, indent=2, default=str))
        return
    click.echo("Machine")
    for line in report["machine_lines"]:
        click.echo(f"  {line}")
    click.echo(f"Precision: --dtype auto on {report['dtype']['device']} is {report['dtype']['reason']}")
    click.echo(f"Backend: the UNet runs on {report['backend']['reason']}")
    click.echo("Plans (estimates, not measured on this machine; see docs/planner.md)")
    for entry in report["plans"]:
        click.echo(f"  {_plan_line(entry)}")
    click.echo("Warnings" if report["warnings"] else "Warnings: none")
    for warning in report["warnings"]:
        click.echo(f"  - {warning}")


def register(group: click.Group) -> None:
    group.add_command(doctor_command)
