"""A stand-in for the upstream servers on loopback: files served under their upstream paths
(``/zenodo.org/record/...``), each request logged, and the ways real servers fail on demand (a web page instead of
the file, a redirect loop, a transfer cut short, a wrong stated digest, a server that dies mid-download)."""
from __future__ import annotations

import http.server
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Upstream:
    """``files``: URL path -> bytes; ``faults``: URL path -> ``html``, ``loop``, ``cut`` (half the bytes sent, then
    the connection closed), ``chunked-cut`` (the same without a length), ``die`` (``cut``, and the server stops
    answering), ``404``, ``huge`` (a length no disk holds), ``redirect:<url>``, ``etag:<md5>`` (the bytes with a
    Zenodo-style ``ETag``), or ``stated:<sha256>`` (the bytes redirected to with that ``X-Linked-Etag``, as the
    Hugging Face Hub does)."""

    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def start(self) -> "Upstream":
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = urllib.parse.unquote(self.path.split("?")[0])
                upstream.requests.append(path)
                fault = upstream.faults.get(path, "")
                if fault == "html":
                    self._send(200, b"<html><body>Please log in</body></html>", "text/html; charset=utf-8")
                elif fault == "loop":
                    self.send_response(302)
                    self.send_header("Location", self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif fault.startswith("redirect:"):
                    self.send_response(302)
                    self.send_header("Location", fault[9:])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif fault == "huge":  # a length no disk holds, then nothing
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(10 ** 18))
                    self.end_headers()
                    self.close_connection = True
                elif fault == "chunked-cut":  # one chunk, then the connection closed without the last chunk
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n%s\r\n" % (1000, b"x" * 1000))
                    self.wfile.flush()
                    self.close_connection = True
                elif fault.startswith("etag:"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(upstream.files[path])))
                    self.send_header("ETag", f'"md5:{fault[5:]}"')
                    self.end_headers()
                    self.wfile.write(upstream.files[path])
                elif fault.startswith("stated:"):
                    self.send_response(302)
                    self.send_header("Location", self.path + "?storage")
                    self.send_header("X-Linked-Etag", f'"{fault[7:]}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    upstream.faults[path] = "served"
                elif fault in ("cut", "die") or path not in upstream.files or fault == "404":
                    if path not in upstream.files or fault == "404":
                        self._send(404, b"not found", "text/plain")
                        return
                    data = upstream.files[path]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    if fault == "die":  # gone: later connections are refused
                        threading.Thread(target=upstream.stop, daemon=True).start()
                else:
                    self._send(200, upstream.files[path], "application/octet-stream")

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, upstream_url: str) -> str:
        """Where ``upstream_url`` (``https://host/path``) is served here: ``http://127.0.0.1:port/host/path``."""
        return self.base + "/" + upstream_url.split("://", 1)[1]

    def serve(self, upstream_url: str, data: bytes | Path, fault: str = "") -> str:
        """Serve ``data`` under ``upstream_url``'s path; return the local URL."""
        local = self.url(upstream_url)
        path = urllib.parse.unquote(urllib.parse.urlsplit(local).path)
        self.files[path] = data.read_bytes() if isinstance(data, Path) else data
        if fault:
            self.faults[path] = fault
        return local

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Upstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.server.socket.fileno() != -1:
            self.stop()
