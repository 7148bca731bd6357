"""Channel security for the client: TLS credentials from PEM files, and the API key sent
as `authorization: Bearer …` on every call.

The key goes in through a client interceptor rather than gRPC call credentials because
call credentials only travel over TLS, and a server on loopback may serve plaintext with
keys on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

API_KEY_ENV = "DOCFOUNDRY_API_KEY"


def tls_credentials(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> grpc.ChannelCredentials:
    """TLS to the server: `ca_file` verifies it (default: the system's roots); `cert_file`
    and `key_file` are this client's certificate, for servers that require one."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs both cert_file and key_file")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(key_file),
        certificate_chain=_read(cert_file),
    )


def _read(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def api_key_from_env() -> str | None:
    return os.environ.get(API_KEY_ENV) or None


class ApiKeyInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <key>` to every unary and bidirectional call."""

    def __init__(self, api_key: str) -> None:
        self._metadata = ("authorization", f"Bearer {api_key}")

    def _with_key(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._with_key(details), request)

    async def intercept_stream_stream(
        self,
        continuation: Callable[..., Any],
        details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(self._with_key(details), request_iterator)
