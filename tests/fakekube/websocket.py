"""Minimal RFC 6455 server-side WebSocket framing (standard library only)."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


class WebSocket:
    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile
        self._wlock = threading.Lock()
        self.closed = False

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.rfile.read(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def recv(self):
        """Returns (opcode, payload) for a whole message; control frames are returned as they come."""
        message, msg_op = b"", None
        while True:
            b1, b2 = self._read_exact(2)
            fin, op = b1 & 0x80, b1 & 0x0F
            masked, length = b2 & 0x80, b2 & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read_exact(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if masked else None
            data = self._read_exact(length)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if length < 64 else _unmask(data, mask)
            if op >= 0x8:
                return op, data
            if op != OP_CONT:
                msg_op = op
            message += data
            if fin:
                return msg_op, message

    def send(self, payload: bytes, opcode: int = OP_BINARY):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([n])
        elif n < 65536:
            header += bytes([126]) + struct.pack("!H", n)
        else:
            header += bytes([127]) + struct.pack("!Q", n)
        with self._wlock:
            if self.closed:
                return
            self.wfile.write(header + payload)
            self.wfile.flush()

    def close(self, code: int = 1000, reason: str = ""):
        with contextlib.suppress(OSError):
            self.send(struct.pack("!H", code) + reason.encode(), OP_CLOSE)
        self.closed = True


def _unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    full = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")
