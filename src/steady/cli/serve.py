"""`steady serve`: the local web studio (page, JSON API, A1111 API) on 127.0.0.1:7860.

    steady serve                          http://127.0.0.1:7860, loopback only, no token needed
    steady serve --port 7861
    steady serve --listen                 every address (0.0.0.0): a token is required; printed
    steady serve --host 192.168.1.5 --token SECRET

A1111 clients find it at the same port as A1111 (7860). Stop it with Ctrl+C: the image being
made is finished or dropped, and a run that was not finished resumes at the next start.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

import click

from steady.cli.options import folder_options, folder_settings
from steady.errors import BadInput


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """BadInput naming --host when it is not an address of this machine (a name that does not
    resolve, an address no interface has), or --port when that port cannot be had there."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise BadInput("host", host, f"is not an address this machine can listen on ({exc}); "
                                     "give an IP address of this machine, or leave --host out for 127.0.0.1") from None  # fmt: skip
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise BadInput("host", host, f"is not an address of this machine ({exc.strerror}); give one of its "
                                             "IP addresses, or --listen for all of them") from exc  # fmt: skip
            raise BadInput("port", port, f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                         "is another server using it? pick one with --port") from exc  # fmt: skip


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=7860, show_default=True, help="Port (A1111 clients expect 7860).")
@click.option("--listen", is_flag=True, help="Listen on every address (0.0.0.0); a token is then required.")
@click.option("--token", default=None, envvar="STEADY_TOKEN",
              help="Token clients must send (default: a new one when not on loopback).")
@folder_options
def serve_command(host: str, port: int, listen: bool, token: str | None, **folders: str | None) -> None:
    """Serve the web studio and the HTTP APIs."""
    import uvicorn

    from steady.catalog import open_catalog, reconcile
    from steady.web.app import create_app
    from steady.web.security import Guard, new_token
    from steady.web.studio import Studio

    # 1. Check the arguments before anything starts.
    if not 1 <= port <= 65535:
        raise BadInput("port", port, "must be between 1 and 65535")
    host = "0.0.0.0" if listen else host
    loopback = is_loopback(host)
    if not loopback and not token:
        token = new_token()
    if token is not None and len(token) < 8:
        raise BadInput("token", token, "must be at least 8 characters")
    check_port_free(host, port)
    cfg = folder_settings(folders)
    # 2. The catalog agrees with the files before anything new is written.
    catalog = open_catalog(cfg.db_path)
    reconcile(catalog, cfg.outputs_dir, trash_dir=cfg.trash_dir)
    # 3. Serve until Ctrl+C.
    studio = Studio(cfg, catalog=catalog)
    app = create_app(studio, Guard(token=token, loopback_only=loopback))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"steady studio: {url}" + ("" if loopback else f"   (token: {token})"), err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level=os.environ.get("STEADY_LOG", "warning"),
                    timeout_graceful_shutdown=5)  # fmt: skip
    finally:
        catalog.close()


def register(group: click.Group) -> None:
    group.add_command(serve_command)
