"""A TLS listener that speaks just enough Kafka for a client to try SASL, and records what it sent.

The tansu broker of the Kafka tests (0.6.0) cannot be used for this: its
``--cert`` and ``--key`` flags refuse to be given together and its listener
does not speak TLS with either alone, and with ``--authentication`` users
can only be created through the broker, which then refuses the unauthenticated
``tansu user create``. So the Kafka security settings are tested up to the
wire: a real aiokafka client, built from otelml's settings, must complete a
TLS handshake with the test CA's server certificate and offer the configured
SASL mechanism and credentials. Authentication is then refused, so that
nothing else of Kafka is needed.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import struct

from aiokafka.protocol import admin

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
SASL_AUTHENTICATION_FAILED = 58
_RESPONSES = {
    (API_VERSIONS, 0): admin.ApiVersionResponse_v0,
    (API_VERSIONS, 1): admin.ApiVersionResponse_v1,
    (API_VERSIONS, 2): admin.ApiVersionResponse_v2,
    (SASL_HANDSHAKE, 0): admin.SaslHandShakeResponse_v0,
    (SASL_HANDSHAKE, 1): admin.SaslHandShakeResponse_v1,
    (SASL_AUTHENTICATE, 0): admin.SaslAuthenticateResponse_v0,
    (SASL_AUTHENTICATE, 1): admin.SaslAuthenticateResponse_v1,
}


class SaslRecordingBroker:
    """Listens on 127.0.0.1 with ``ssl_context``; ``mechanisms`` and ``auth_tokens`` hold what clients offered."""

    def __init__(self, ssl_context: ssl.SSLContext):
        self.ssl_context = ssl_context
        self.mechanisms: list[str] = []
        self.auth_tokens: list[bytes] = []
        self.port: int | None = None
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> SaslRecordingBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack(">i", await reader.readexactly(4))[0]
                frame = await reader.readexactly(size)
                api_key, version, correlation_id, client_id_length = struct.unpack(">hhih", frame[:10])
                body = io.BytesIO(frame[10 + max(client_id_length, 0) :])
                response = self._answer(api_key, version, body)
                if response is None:
                    return
                payload = struct.pack(">i", correlation_id) + response.encode()
                writer.write(struct.pack(">i", len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()

    def _answer(self, api_key: int, version: int, body: io.BytesIO):
        response = _RESPONSES.get((api_key, version))
        if response is None:
            return None
        if api_key == API_VERSIONS:
            versions = [(API_VERSIONS, 0, 2), (SASL_HANDSHAKE, 0, 1), (SASL_AUTHENTICATE, 0, 1)]
            return response(0, versions) if version == 0 else response(0, versions, 0)
        if api_key == SASL_HANDSHAKE:
            mechanism = admin.SaslHandShakeRequest_v0.decode(body).mechanism
            self.mechanisms.append(mechanism)
            return response(0, [mechanism])
        self.auth_tokens.append(admin.SaslAuthenticateRequest_v0.decode(body).sasl_auth_bytes)
        fields = [SASL_AUTHENTICATION_FAILED, "recorded by the test broker", b""]
        return response(*fields) if version == 0 else response(*fields, 0)
