"""The HTTP API, dashboard and /metrics (install the ``web`` extra).

``create_app(fleet, token=..., public_read=...)`` builds the ASGI app;
``serve(db_url, host, port, token, public_read, tls_cert=..., tls_key=...)`` runs it
(``agentfleet serve``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentfleet.web.app import create_app
    from agentfleet.web.server import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:  # imported lazily: the extra's packages load on first use
    if name == "create_app":
        from agentfleet.web.app import create_app

        return create_app
    if name == "serve":
        from agentfleet.web.server import serve

        return serve
    raise AttributeError(name)
