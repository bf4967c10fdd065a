"""Real servers on loopback for the alerts tests: an SMTP server (aiosmtpd, STARTTLS and AUTH
required, a certificate from a test CA) and an HTTP receiver for webhooks that can answer 200,
answer 500 or hang. Each fails the test with its reason when it cannot start; none is ever skipped."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER, SMTP_PASSWORD = "backline", "s3cret-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    """What the SMTP server received, in order."""

    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return [m for _, m in self.messages]
            time.sleep(0.05)
        raise AssertionError(f"expected {count} e-mails within {timeout} s, got {len(self.messages)}")


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_file: Path
    mailbox: Mailbox
    controller: Controller


def start_smtp(folder: Path) -> SmtpServer:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = folder / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box = Mailbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER \
            and auth_data.password.decode() == SMTP_PASSWORD
        if ok:
            box.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, server_hostname="localhost",
                            tls_context=context, require_starttls=True, auth_required=True,
                            auth_require_tls=True, authenticator=authenticate, ready_timeout=10)
    try:
        controller.start()
    except Exception as exc:  # the run fails, with the reason
        raise RuntimeError(f"the test SMTP server could not start on 127.0.0.1:{port}: {exc}") from exc
    return SmtpServer("127.0.0.1", port, ca_file, box, controller)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on loopback that records each POST and answers as told: ok, error or hang."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.mode = "ok"
        self.released = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    mode = outer.mode
                if mode == "hang":
                    outer.released.wait(30)
                    return
                status = 200 if mode == "ok" else 500
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args) -> None:
                pass

        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        except OSError as exc:
            raise RuntimeError(f"the test webhook receiver could not start: {exc}") from exc
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
