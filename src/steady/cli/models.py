"""`steady models`: the checkpoints found in the models folder, with architecture, size and hash;
the LoRA files in the LoRA folder, with the architecture they were made for and A1111's hash; the
textual-inversion embeddings (token count, architecture) and the VAEs."""

from __future__ import annotations

import json

import click

from steady.cli.options import folder_options, folder_settings


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
@click.option("--no-hash", is_flag=True, help="Skip hashing (a new 4 GB file takes seconds to hash once).")
@folder_options
def models_command(as_json: bool, no_hash: bool, **folders: str | None) -> None:
    """List models (models_dir), LoRAs (lora_dir), embeddings (embeddings_dir) and VAEs (vae_dir)."""
    from steady.models.hashing import short_hash
    from steady.models.resolve import list_models

    cfg = folder_settings(folders)
    skipped: list = []
    found = list_models(cfg, skipped)
    for path, why in skipped:  # what the scan passed over, so nothing is missing without a word
        click.echo(f"steady: note: {path}: {why}", err=True)
    if not found and not as_json:
        click.echo(f"no models in {cfg.models_dir} (put .safetensors files or diffusers folders there)")
    for info in found:
        digest = "" if no_hash else short_hash(info.path, cfg)
        if as_json:
            click.echo(json.dumps({
                "name": info.name, "path": str(info.path), "format": info.format, "arch": info.arch,
                "prediction_type": info.prediction_type, "size_bytes": info.size_bytes, "hash": digest,
            }))
        else:
            click.echo(f"{info.name:<40} {info.arch:<5} {info.format:<11} {info.size_bytes / 2**30:6.2f} GiB  {digest:<10}  {info.path}")
    _list_loras(cfg, as_json, no_hash)
    _list_embeddings(cfg, as_json, no_hash)
    _list_vaes(cfg, as_json, no_hash)


def _print_found(found: list, skipped: list, heading: str, kind: str, digest, line, as_json: bool) -> None:
    """Notes for the files that could not be read, then each file found: a JSON object with its
    ``type`` and ``hash`` (``digest(info)``), or ``line(info, hash)`` under ``heading``."""
    for path, why in skipped:
        click.echo(f"steady: note: {path}: {why}", err=True)
    if not as_json and found:
        click.echo(heading)
    for info in found:
        if as_json:
            click.echo(json.dumps({"type": kind, **info.to_dict(), "hash": digest(info)}))
        else:
            click.echo(line(info, digest(info)))


def _list_embeddings(cfg, as_json: bool, no_hash: bool) -> None:
    """The embeddings: name (the word that uses it), architecture, token count, layout, A1111's
    short hash. JSON objects carry "type": "embedding"."""
    from steady.models.embeddings import embedding_hash, list_embeddings

    def line(info, digest: str) -> str:
        tokens = f"{info.vectors} token{'s' if info.vectors != 1 else ''}"
        return f"{info.name:<40} {info.arch or '?':<5} {tokens:<11} {info.layout or 'unknown':<16} {digest:<12}  {info.path}"

    skipped: list = []
    found = list_embeddings(cfg, skipped)
    _print_found(found, skipped, f"\nEmbeddings in {cfg.embeddings_dir} (used where the name is a word of a prompt):",
                 "embedding", lambda info: "" if no_hash else embedding_hash(info, cfg), line, as_json)  # fmt: skip


def _list_vaes(cfg, as_json: bool, no_hash: bool) -> None:
    """The VAEs: file name (what --vae NAME says), layout, size, A1111's VAE hash."""
    from steady.models.vae import list_vaes, vae_hash

    def line(info, digest: str) -> str:
        return f"{info.name:<40} {info.layout:<11} {info.size_bytes / 2**20:6.1f} MiB  {digest:<10}  {info.path}"

    skipped: list = []
    found = list_vaes(cfg, skipped)
    _print_found(found, skipped, f"\nVAEs in {cfg.vae_dir} (use with --vae NAME):", "vae",
                 lambda info: "" if no_hash else vae_hash(info, cfg), line, as_json)  # fmt: skip


def _list_loras(cfg, as_json: bool, no_hash: bool) -> None:
    """The LoRA files: name (what <lora:NAME:W> says), architecture ('?': the shapes do not tell),
    kind, size, A1111's short hash. JSON objects carry "type": "lora"."""
    from steady.models.loras import list_loras, lora_hash

    skipped: list = []
    loras = list_loras(cfg, skipped)
    for path, why in skipped:
        click.echo(f"steady: note: {path}: {why}", err=True)
    if not as_json and loras:
        click.echo(f"\nLoRAs in {cfg.lora_dir} (use as <lora:NAME:WEIGHT> in a prompt):")
    for info in loras:
        digest = "" if no_hash else lora_hash(info, cfg)
        name = info.rel or info.name
        if as_json:
            click.echo(json.dumps({"type": "lora", **info.to_dict(), "name": name, "hash": digest}))
        else:
            click.echo(f"{name:<40} {info.arch or '?':<5} {info.kind:<11} {info.size_bytes / 2**20:6.1f} MiB  {digest:<12}  {info.path}")
    _list_shipped_loras(cfg, as_json, no_hash)


def _list_shipped_loras(cfg, as_json: bool, no_hash: bool) -> None:
    """The LoRAs that ship with steady (found after the LoRA folder): trained on the embedded model."""
    from steady.models.loras import inspect_lora, lora_hash, shipped_lora_dir

    files = sorted(shipped_lora_dir().glob("*.safetensors"))
    if not as_json and files:
        click.echo("\nLoRAs that ship with steady, for the embedded model (found after the LoRA folder):")
    for path in files:
        info = inspect_lora(path)
        digest = "" if no_hash else lora_hash(info, cfg)
        if as_json:
            click.echo(json.dumps({"type": "lora", **info.to_dict(), "hash": digest, "shipped": True}))
        else:
            click.echo(f"{info.name:<40} {'tiny':<5} {info.kind:<11} {info.size_bytes / 2**20:6.1f} MiB  {digest:<12}  {path}")


def register(group: click.Group) -> None:
    group.add_command(models_command)
