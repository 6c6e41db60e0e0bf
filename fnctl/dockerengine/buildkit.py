"""Build secrets for the local engine: a BuildKit session that answers the engine's requests.

The docker SDK builds only with the classic builder, which has no secrets: a value can reach
a build only as an ARG, and every ARG a RUN step sees is written into the image's history.
The engine's own BuildKit (API build version 2) fetches `RUN --mount=type=secret,id=ID`
values from the client during the build, over a session: the client opens `POST /session`,
the engine upgrades it to HTTP/2 and calls gRPC methods the client serves on it. This module
serves the two the engine needs: `moby.buildkit.secrets.v1.Secrets/GetSecret` and the gRPC
health check the engine polls to keep the session open. Secrets travel only over the
engine's socket, into a tmpfs mount of the one RUN step; they are never stored.

The messages are three small protobufs, written and read here by hand rather than adding
grpcio and protobuf: GetSecretRequest {1: string ID}, GetSecretResponse {1: bytes data},
HealthCheckResponse {1: enum status, SERVING = 1}. References: moby/buildkit
session/secrets/secrets.proto, session/grpc.go (health monitor), and the Docker Engine API's
`/session` endpoint. HTTP/2 framing is the `h2` package's.
"""

from __future__ import annotations

import contextlib
import secrets as token
import socket
import threading

SECRETS_METHOD = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
HEALTH_METHOD = "/grpc.health.v1.Health/Check"
_NOT_FOUND, _UNIMPLEMENTED = 5, 12          # gRPC status codes


def session_headers(session_id: str) -> dict[str, str]:
    """Headers of `POST /session` that name the session and the methods it serves."""
    return {"Upgrade": "h2c", "Connection": "Upgrade",
            "X-Docker-Expose-Session-Uuid": session_id,
            "X-Docker-Expose-Session-Name": "fnctl",
            "X-Docker-Expose-Session-Sharedkey": token.token_hex(8),
            "X-Docker-Expose-Session-Grpc-Method": f"{SECRETS_METHOD}, {HEALTH_METHOD}"}


def new_session_id() -> str:
    return token.token_hex(16)


class SecretSession:
    """Serves `values` (id -> secret) on an upgraded engine connection until closed."""

    def __init__(self, sock: socket.socket, values: dict[str, str], reader=None):
        self._sock = sock
        # What the engine sent may already sit in the HTTP response's buffer: read through it.
        self._read = reader.read1 if reader is not None else sock.recv
        self._values = values
        # Answers still to send (stream -> bytes left), as HTTP/2 flow control lets them go: a secret
        # larger than the peer's window (64 KiB at first), e.g. a CA bundle, goes out in several frames.
        self._pending: dict[int, bytes] = {}
        self._thread = threading.Thread(target=self._serve, name="buildkit-session", daemon=True)

    def __enter__(self) -> SecretSession:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        import h2.config
        import h2.connection
        import h2.events

        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        paths: dict[int, str] = {}
        bodies: dict[int, bytes] = {}
        try:
            self._sock.sendall(conn.data_to_send())
            while True:
                data = self._read(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        paths[event.stream_id] = dict(event.headers).get(":path", "")
                        bodies[event.stream_id] = b""
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        sid = event.stream_id
                        self._answer(conn, sid, paths.pop(sid, ""), bodies.pop(sid, b""))
                    elif isinstance(event, h2.events.StreamReset):
                        self._pending.pop(event.stream_id, None)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                self._flush(conn)
                self._sock.sendall(conn.data_to_send())
        except Exception:               # closed by either side, or a protocol error: the build then
            return                      # fails with the engine's own message

    def _answer(self, conn, stream_id: int, path: str, body: bytes) -> None:
        status, message = _UNIMPLEMENTED, b""
        if path == HEALTH_METHOD:
            status, message = 0, _field_varint(1, 1)
        elif path == SECRETS_METHOD:
            wanted = _string_field(_grpc_message(body), 1)
            if wanted in self._values:
                status, message = 0, _field_bytes(1, self._values[wanted].encode())
            else:
                status = _NOT_FOUND
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        if status == 0:
            self._pending[stream_id] = b"\x00" + len(message).to_bytes(4, "big") + message
        else:
            conn.send_headers(stream_id, [("grpc-status", str(status))], end_stream=True)

    def _flush(self, conn) -> None:
        """Send what the flow-control windows allow; a stream's trailers once all its data is out."""
        for stream_id, data in list(self._pending.items()):
            while data:
                size = min(len(data), conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if size <= 0:
                    break                        # wait for the peer's WINDOW_UPDATE
                conn.send_data(stream_id, data[:size])
                data = data[size:]
            if data:
                self._pending[stream_id] = data
            else:
                del self._pending[stream_id]
                conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)


def trace_lines(raw: bytes, started: set[bytes]) -> list[tuple[str, bool]]:
    """Progress lines of one BuildKit status message (moby/buildkit api/services/control:
    StatusResponse {1: Vertex vertexes, 3: VertexLog logs}; Vertex {1: digest, 3: name,
    5: started, 7: error}; VertexLog {4: msg}). (line, is_step): a step line the first time a
    vertex starts; its output lines as they come. `started` remembers the vertexes seen."""
    out: list[tuple[str, bool]] = []
    for number, value in fields(raw):
        if not isinstance(value, bytes):
            continue
        if number == 1:
            vertex = dict(fields(value))
            digest, name = vertex.get(1, b""), vertex.get(3, b"")
            if 5 in vertex and digest not in started and isinstance(name, bytes):
                started.add(digest)
                out.append((name.decode(errors="replace"), True))
        elif number == 3:
            message = dict(fields(value)).get(4, b"")
            if isinstance(message, bytes):
                out += [(line, False) for line in message.decode(errors="replace").splitlines() if line.strip()]
    return out


# -- the few protobuf bits the session needs -------------------------------------------

def _grpc_message(body: bytes) -> bytes:
    """The first length-prefixed message of a gRPC body (flag byte, 4-byte length, bytes)."""
    if len(body) < 5:
        return b""
    return body[5:5 + int.from_bytes(body[1:5], "big")]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for the rest."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif kind == 2:
            size, pos = _varint(data, pos)
            out.append((number, data[pos:pos + size]))
            pos += size
        elif kind == 1:
            out.append((number, data[pos:pos + 8]))
            pos += 8
        elif kind == 5:
            out.append((number, data[pos:pos + 4]))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {kind}")
    return out


def _string_field(data: bytes, number: int) -> str:
    return next((v.decode(errors="replace") for n, v in fields(data) if n == number and isinstance(v, bytes)), "")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _encode_varint(number << 3) + _encode_varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(value)) + value
