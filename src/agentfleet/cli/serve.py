"""`agentfleet serve`: the HTTP API, the dashboard and /metrics (needs the `web` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from agentfleet.cli.app import EnginesOpt, ExitCode, app, db_url, engine_config, err


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on. e.g. --host 127.0.0.1")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port to listen on. e.g. --port 8700")
    ] = 8700,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="AGENTFLEET_TOKEN",
            metavar="TOKEN",
            show_default=False,
            help="The admin's bearer token for the API, at least 16 characters (or set "
            "AGENTFLEET_TOKEN); generated and printed once when unset, on loopback only. "
            "Tokens made with `agentfleet tokens create` work too, as far as their role allows. "
            "e.g. --token 7f3a9c2e5b8d41f6a0c4",
        ),
    ] = None,
    public_read: Annotated[
        bool,
        typer.Option(
            "--public-read",
            help="Let anyone who can reach the server read without a token. e.g. --public-read",
        ),
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="AGENTFLEET_DB",
            metavar="URL",
            show_default=False,
            help="Database URL; overrides the global --db. e.g. --db sqlite:///fleet.db",
        ),
    ] = None,
    tls_cert: Annotated[
        str | None,
        typer.Option(
            "--tls-cert",
            envvar="AGENTFLEET_TLS_CERT",
            metavar="FILE",
            show_default=False,
            help="Serve HTTPS with this PEM certificate (its chain may follow it in the file); "
            "needs --tls-key too (or set AGENTFLEET_TLS_CERT). e.g. --tls-cert fleet.crt",
        ),
    ] = None,
    tls_key: Annotated[
        str | None,
        typer.Option(
            "--tls-key",
            envvar="AGENTFLEET_TLS_KEY",
            metavar="FILE",
            show_default=False,
            help="The certificate's PEM private key, unencrypted; needs --tls-cert too (or set "
            "AGENTFLEET_TLS_KEY). e.g. --tls-key fleet.key",
        ),
    ] = None,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="Allow plain HTTP on an address beyond loopback, for a reverse proxy in front "
            "that terminates TLS. e.g. --host 0.0.0.0 --insecure-http",
        ),
    ] = False,
    engines: EnginesOpt = None,
) -> None:
    """Serve the HTTP API, the dashboard and /metrics.

    Binding to anything but loopback needs an explicit token, and HTTPS (--tls-cert and
    --tls-key) or --insecure-http behind a TLS-terminating reverse proxy.

    Example: agentfleet serve --port 8700 --tls-cert fleet.crt --tls-key fleet.key
    """
    try:
        from agentfleet.web import server
    except ImportError as exc:
        err.print(f"[red]error:[/] {exc.name} is missing: pip install 'agentfleet[web]'")
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
    try:
        server.serve(
            db or db_url(ctx),
            host=host,
            port=port,
            token=token,
            public_read=public_read,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure_http=insecure_http,
            engines=engine_config(engines).engine_names(),
        )
    except server.ServeRefused as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
