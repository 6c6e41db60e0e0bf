"""Downloading a file over https (a build template's URL): the only network fetch fnctl makes.

https only, on every hop: a redirect to anything else is refused rather than followed, so
a template cannot be swapped on the wire. The deadline covers the whole download (connect,
TLS, headers, body, redirects): urllib's own timeout applies per socket operation, so a
server sending a byte a second would never reach it. A watchdog shuts the sockets at the
deadline instead.

The certificates trusted are the system's; OpenSSL reads SSL_CERT_FILE / SSL_CERT_DIR from
the environment, which is how a private CA (or a test's self-signed certificate) is added.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from fnctl.errors import UsageError
from fnctl.redact import redact

DEFAULT_DEADLINE = 30.0


def fetch(url: str, limit: int, deadline: float = DEFAULT_DEADLINE) -> bytes:
    """The body of `url` (https), at most `limit` + 1 bytes, within `deadline` seconds in all."""
    shown = redact(url)
    if urlsplit(url).scheme != "https":
        raise UsageError(f"refusing to download {shown}: only https URLs are fetched",
                         "serve the template over https, or download it and pass the file")
    watchdog = _Watchdog(deadline)
    opener = urllib.request.build_opener(_HttpsOnlyRedirects(), _DeadlineHttps(watchdog))
    data = b""
    try:
        with watchdog, opener.open(url, timeout=deadline) as resp:
            while len(data) <= limit:
                chunk = resp.read1(min(65536, limit + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
    except UsageError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        if not watchdog.expired:
            reason = redact(str(getattr(e, "reason", None) or e))
            raise UsageError(f"cannot download {shown}: {reason}",
                             "check the URL; a private CA's certificate can be given with SSL_CERT_FILE") from None
    if watchdog.expired:
        raise UsageError(f"downloading {shown} took longer than {deadline:g}s", "check the server; it answers "
                         "too slowly (the limit covers the whole download)")
    return data


class _Watchdog:
    """Shuts every socket it was given once `seconds` have passed."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: wrapping the socket in TLS detaches the original object,
        # while a shutdown through any descriptor of the connection ends it for all.
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                self._shut(self._sockets[-1])

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        # `newurl` is already absolute here (urllib joins it with the request's URL).
        if urlsplit(newurl).scheme != "https":
            raise UsageError(f"{redact(req.full_url)} redirects to {redact(newurl)}, which is not https; "
                             "fnctl does not follow it", "use the template's final https URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _DeadlineHttps(urllib.request.HTTPSHandler):
    """https connections whose raw socket the watchdog can shut (TLS handshake included)."""

    def __init__(self, watchdog: _Watchdog):
        super().__init__(context=ssl.create_default_context())
        self._watchdog = watchdog

    def https_open(self, req):
        watchdog = self._watchdog

        class Connection(http.client.HTTPSConnection):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self._create_connection = self._watched     # http.client's hook for the raw socket

            @staticmethod
            def _watched(*args, **kwargs) -> socket.socket:
                sock = socket.create_connection(*args, **kwargs)
                watchdog.watch(sock)
                return sock

        return self.do_open(Connection, req, context=self._context)
