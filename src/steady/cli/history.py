"""`steady history`: recent runs, or how one prompt evolved.

    steady history                      the 20 newest runs: id, when, images, model, prompt, first image
    steady history --limit 50 --json
    steady history --prompt lighthouse  every run whose prompt contains "lighthouse", oldest first,
                                        with the words added (+word) and removed (-word) each time
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from steady.textdiff import word_diff


@click.command("history")
@click.option("--limit", "-n", type=int, default=20, show_default=True, help="How many runs to show.")
@click.option("--prompt", "prompt_text", metavar="TEXT", default=None,
              help="Runs whose prompt contains TEXT (any case), oldest first, with word diffs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of runs).")
def history_command(limit: int, prompt_text: str | None, as_json: bool) -> None:
    """Show recent runs, or the iterations of a prompt."""
    from steady.catalog import open_catalog
    from steady.jobs.queue import JobQueue

    with open_catalog() as catalog:
        JobQueue(catalog).recover()  # a run whose program died shows as interrupted, not running
        if prompt_text is None:
            runs = catalog.recent_runs(limit=limit)
            rows = [run.to_dict() for run in runs]
        else:
            runs = catalog.prompt_iterations(prompt_text)
            rows = _with_diffs([run.to_dict() for run in runs])
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        click.echo("no runs yet" if prompt_text is None else f"no runs with a prompt containing {prompt_text!r}")
    elif prompt_text is None:
        for row in rows:
            click.echo(_run_line(row))
    else:
        for row in rows:
            click.echo(_iteration_lines(row))


def _with_diffs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    previous: dict[str, Any] | None = None
    for row in rows:
        if previous is None:
            row["diff"] = None
        else:
            row["diff"] = {
                "against_run": previous["id"],
                "prompt": word_diff(previous["prompt"], row["prompt"]),
                "negative_prompt": word_diff(previous["negative_prompt"], row["negative_prompt"]),
            }
        previous = row
    return rows


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _one_line(text: str, width: int) -> str:
    flat = " / ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _run_line(row: dict[str, Any]) -> str:
    images = f"{row['n_done']}/{row['n_requested']}"
    model = _one_line(row["model_name"] or "-", 24)
    first = row["first_image_path"] or "-"
    return (f"{row['id']:>5}  {_when(row['created_at'])}  {images:>7}  {row['status']:<11}  {model:<24}  "
            f"{_one_line(row['prompt'], 60):<60}  {first}{_lineage(row)}")


def _lineage(row: dict[str, Any]) -> str:
    """"  from image #123" for a run that started from a catalog image (its hash when the catalog lacks it)."""
    if row.get("from_image_id") is not None:
        return f"  from image #{row['from_image_id']}"
    if row.get("from_hash"):
        return f"  from an image not in the catalog (sha256 {row['from_hash'][:12]})"
    return ""


def _iteration_lines(row: dict[str, Any]) -> str:
    head = (f"#{row['id']}  {_when(row['created_at'])}  {row['n_done']} image{'s' if row['n_done'] != 1 else ''}  "
            f"{row['model_name'] or '-'}  {row['status']}")
    lines = [head + _lineage(row), f"    {_one_line(row['prompt'], 200)}"]
    if row["negative_prompt"]:
        lines.append(f"    negative: {_one_line(row['negative_prompt'], 190)}")
    diff = row["diff"]
    if diff is not None:
        if not diff["prompt"] and not diff["negative_prompt"]:
            lines.append("    (same prompt)")
        if diff["prompt"]:
            lines.append("    " + " ".join(diff["prompt"]))
        if diff["negative_prompt"]:
            lines.append("    negative: " + " ".join(diff["negative_prompt"]))
    if row["first_image_path"]:
        lines.append(f"    {row['first_image_path']}")
    return "\n".join(lines)


def register(group: click.Group) -> None:
    group.add_command(history_command)
