"""`steady import FOLDER`: index the PNGs you already have, in place (nothing is copied).

    steady import ~/stable-diffusion-webui/outputs   A1111/Forge, ComfyUI, InvokeAI, plain or ours
    steady import ~/ComfyUI/output --json            the report as one JSON object
    steady import ~/outputs --no-thumbnails          leave the grid's thumbnails to the page

Every PNG under FOLDER (recursively; symlinks are not followed) becomes a catalog row with the
parameters its metadata holds, as one import group (the gallery's filter; not prompt history). Running it again adds only
new files; a copy of an image already recorded is counted as a duplicate, not added. Then the
grid thumbnails the catalog lacks are made ahead (steady.catalog.ahead), so the gallery shows
pictures, not placeholders, the first time it scrolls through them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

PROBLEMS_SHOWN = 5


@click.command("import")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a summary.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--thumbnails/--no-thumbnails", default=True, show_default=True,
              help="Make the gallery's thumbnails the catalog lacks after the import.")
def import_command(folder: Path, as_json: bool, quiet: bool, thumbnails: bool) -> None:
    """Index the PNGs under FOLDER into the catalog, in place (A1111, ComfyUI, InvokeAI, plain)."""
    from steady.catalog import open_catalog
    from steady.catalog.importer import check_folder, import_folder

    # 1. Refuse a missing folder (or a file) before the catalog is opened: nothing is written.
    check_folder(folder)
    # 2. Import, with a progress bar on stderr (made at the first file, when the total is known).
    bar = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet or as_json:
            return
        if bar is None:
            bar = _progress_bar(total)
        bar.total = total
        bar.update(done - bar.n)

    try:
        with open_catalog() as catalog:
            report = import_folder(catalog, folder, on_progress=on_progress)
            if bar is not None:
                bar.close()
                bar = None
            # 3. The grid's thumbnails made ahead, with their own progress bar.
            if thumbnails:
                from steady.catalog.ahead import make_thumbs_ahead
                from steady.config import settings

                make_thumbs_ahead(catalog, settings().thumbs_dir, on_progress)
    finally:
        if bar is not None:
            bar.close()
    # 4. The report.
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(summary(report.to_dict()))


def summary(report: dict[str, Any]) -> str:
    """One paragraph: what was added (by source), known, duplicated and skipped, and why."""
    sources = ", ".join(f"{name} {count:,}" for name, count in report["by_source"].items() if count)
    lines = [
        f"{report['files_seen']:,} PNG file(s) in {report['folder']} in {report['seconds']:.1f} s: "
        f"{report['added']:,} added" + (f" ({sources})" if sources else "")
        + f", {report['already_known']:,} already in the catalog, {report['duplicates']:,} duplicate(s) of recorded "
        f"images, {report['skipped']:,} skipped; "
        + (f"import group #{report['import_id']}; " if report.get("import_id") else "")
        + f"{report['warnings']:,} metadata value(s) could not be read."
    ]
    problems = report["problems"]
    if problems:
        lines.append("Problems:")
        lines.extend(f"  {line}" for line in problems[:PROBLEMS_SHOWN])
        more = max(len(problems), report["skipped"]) - PROBLEMS_SHOWN
        if more > 0:
            lines.append(f"  … and {more:,} more (--json lists the first {len(problems)})")
    return "\n".join(lines)


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", dynamic_ncols=True, leave=True)


def register(group: click.Group) -> None:
    group.add_command(import_command)
