"""The admin client against a small HTTP server on 127.0.0.1 (real sockets)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from http_api.admin import AdminClient, AdminError, get_json


class Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        if self.path.startswith("/admin/missing"):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"no such route: see GET /\n")
            return
        out = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_routes_credentials_and_bodies(url: str) -> None:
    c = AdminClient(url + "/", token="t0ken")
    assert c.members() == {"path": "/admin/members"}
    assert c.local("a b", "k/1") == {"path": "/admin/local/a+b/k%2F1"}
    assert c.join("10.0.0.1:8099") == {"path": "/admin/join"}
    method, path, auth, body = Handler.seen[-1]
    assert (method, path, auth) == ("POST", "/admin/join", "Bearer t0ken")
    assert json.loads(body) == {"seed": "10.0.0.1:8099"}
    basic = AdminClient(url, basic="u:p")
    basic.stats()
    assert Handler.seen[-1][2] == "Basic dTpw"


def test_an_error_status_keeps_the_nodes_words(url: str) -> None:
    with pytest.raises(AdminError) as e:
        AdminClient(url).get("/admin/missing")
    assert e.value.status == 404
    assert e.value.text == "no such route: see GET /"
    with pytest.raises(ValueError, match="404"):
        get_json(url + "/admin/missing")
    assert get_json(url + "/admin/ring?x=1") == {"path": "/admin/ring?x=1"}
