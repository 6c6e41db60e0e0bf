"""The BuildKit secret session against a real HTTP/2 client (h2) over a socket pair."""

from __future__ import annotations

import socket

import h2.connection
import h2.events

from fnctl.dockerengine import buildkit


def _get_secret(values: dict[str, str], wanted: str) -> tuple[bytes, dict[str, str]]:
    """What a GetSecret call for `wanted` answers: (the body's message, the trailers)."""
    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    with buildkit.SecretSession(theirs, values):
        client = h2.connection.H2Connection()
        client.initiate_connection()
        request = buildkit._field_bytes(1, wanted.encode())
        client.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                                (":path", buildkit.SECRETS_METHOD), ("content-type", "application/grpc")])
        client.send_data(1, b"\x00" + len(request).to_bytes(4, "big") + request, end_stream=True)
        ours.sendall(client.data_to_send())
        body, trailers, done = b"", {}, False
        while not done:
            data = ours.recv(65536)
            assert data, "the session closed the connection before answering"
            for event in client.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                                for k, v in event.headers}
                elif isinstance(event, h2.events.StreamEnded):
                    done = True
            ours.sendall(client.data_to_send())
    ours.close()
    return buildkit._grpc_message(body), trailers


def test_a_small_secret():
    message, trailers = _get_secret({"TOKEN": "s3cret"}, "TOKEN")
    assert buildkit.fields(message) == [(1, b"s3cret")] and trailers["grpc-status"] == "0"


def test_a_secret_larger_than_the_flow_control_window_arrives_whole():
    """Issue 11: a CA bundle (~220 KB here) is bigger than HTTP/2's first 64 KiB window; the session
    sent it in one frame, h2 refused, the session died and BuildKit said 'transport is closing'."""
    bundle = "".join(f"-----BEGIN CERTIFICATE-----\n{i:08d}{'A' * 56}\n-----END CERTIFICATE-----\n"
                     for i in range(3000))
    assert len(bundle) > 200_000
    message, trailers = _get_secret({"CA_BUNDLE": bundle}, "CA_BUNDLE")
    assert buildkit.fields(message) == [(1, bundle.encode())] and trailers["grpc-status"] == "0"


def test_an_unknown_secret_is_not_found():
    message, trailers = _get_secret({"TOKEN": "s3cret"}, "OTHER")
    assert message == b"" and trailers["grpc-status"] == "5"
