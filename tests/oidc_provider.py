"""A small but real OpenID Connect provider for tests (authorization code flow, RS256 ID tokens).

It runs in a thread on 127.0.0.1 (stdlib ``http.server``) and signs with ``joserfc``, the JOSE
library Authlib itself verifies with (``authlib.jose`` is a deprecated shim over it since
Authlib 1.6). It does what Streamlit's ``st.login()`` (Authlib's Starlette client) needs and
checks what a real provider checks:

- ``/.well-known/openid-configuration``: the discovery document. It advertises S256 PKCE, so
  Streamlit sends a ``code_challenge`` and the token endpoint insists on the verifier.
- ``/authorize``: validates ``client_id``, ``redirect_uri`` (registered URIs only),
  ``response_type=code`` and the ``openid`` scope, keeps ``state``, ``nonce`` and the PKCE
  challenge, then shows a login page with a button per test user (or, given a ``login_hint``
  naming a user, signs that user in at once) and redirects to ``redirect_uri?code=...&state=...``.
- ``/token``: ``client_secret_basic`` (Authlib's default) or ``client_secret_post``; a code is
  single-use, short-lived, bound to its client and ``redirect_uri``; returns an RS256
  ``id_token`` (iss, aud, sub, email, name, nonce, iat, exp, auth_time, at_hash and the user's
  extra claims such as the role claim) and a bearer ``access_token``.
- ``/jwks``, ``/userinfo`` (bearer access token) and ``/logout`` (the ``end_session_endpoint``:
  redirects to a registered ``post_logout_redirect_uri``, passing ``state`` back).

Every request is recorded in :attr:`OIDCProvider.log` so tests can assert on the flow.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CODE_TTL_SECONDS = 60
TOKEN_TTL_SECONDS = 3600


@dataclass(frozen=True)
class TestUser:
    """A person who can sign in at the provider. ``claims`` are added to the ID token and userinfo."""

    __test__ = False  # not a pytest test class

    sub: str
    email: str
    name: str
    claims: dict[str, Any] = field(default_factory=dict)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _half_hash(value: str) -> str:
    """at_hash / c_hash for RS256: base64url of the left half of SHA-256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return _b64url(digest[: len(digest) // 2])


class OIDCProvider:
    """An OpenID Connect provider on a free loopback port. Use as a context manager or start()/stop()."""

    def __init__(self, users: list[TestUser], *, client_id: str = "backline-test",
                 client_secret: str | None = None, redirect_uris: list[str] | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.users = {u.sub: u for u in users}
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.redirect_uris: set[str] = set(redirect_uris or [])
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"},
                                       private=True)
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}  # login page id -> authorization request
        self._codes: dict[str, dict[str, Any]] = {}  # code -> grant
        self._access_tokens: dict[str, dict[str, Any]] = {}  # token -> {user, exp}
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self) -> OIDCProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OIDCProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def register_redirect_uri(self, uri: str) -> None:
        self.redirect_uris.add(uri)

    def add_user(self, user: TestUser) -> None:
        self.users[user.sub] = user

    def events(self, path: str) -> list[dict[str, Any]]:
        """The recorded requests to one endpoint path."""
        with self._lock:
            return [e for e in self.log if e["path"] == path]

    # ------------------------------------------------------------------ protocol

    def metadata(self) -> dict[str, Any]:
        iss = self.issuer
        return {
            "issuer": iss,
            "authorization_endpoint": f"{iss}/authorize",
            "token_endpoint": f"{iss}/token",
            "userinfo_endpoint": f"{iss}/userinfo",
            "jwks_uri": f"{iss}/jwks",
            "end_session_endpoint": f"{iss}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": sorted({"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                                        "email", "email_verified", "name"}
                                       | {k for u in self.users.values() for k in u.claims}),
        }

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    def user_claims(self, user: TestUser) -> dict[str, Any]:
        return {"sub": user.sub, "email": user.email, "email_verified": True, "name": user.name, **user.claims}

    def id_token(self, user: TestUser, *, nonce: str | None, access_token: str, auth_time: int) -> str:
        now = int(time.time())
        claims = {
            **self.user_claims(user),
            "iss": self.issuer,
            "aud": self.client_id,
            "azp": self.client_id,
            "iat": now,
            "exp": now + TOKEN_TTL_SECONDS,
            "auth_time": auth_time,
            "at_hash": _half_hash(access_token),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=["RS256"])

    def issue_code(self, request: dict[str, Any], user: TestUser) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {**request, "user": user.sub, "expires": time.time() + CODE_TTL_SECONDS,
                                 "auth_time": int(time.time())}
        return code

    def redirect_with_code(self, request: dict[str, Any], user: TestUser) -> str:
        params = {"code": self.issue_code(request, user)}
        if request.get("state") is not None:
            params["state"] = request["state"]
        sep = "&" if urlsplit(request["redirect_uri"]).query else "?"
        return f"{request['redirect_uri']}{sep}{urlencode(params)}"

    def exchange(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The token endpoint's logic: (status, JSON body)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                raw = base64.b64decode(authorization.split(None, 1)[1]).decode("utf-8")
            except Exception:
                return 401, {"error": "invalid_client"}
            from urllib.parse import unquote_plus

            basic_id, _, basic_secret = raw.partition(":")
            client_id, client_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        if client_id != self.client_id or not secrets.compare_digest(client_secret or "", self.client_secret):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # single use
        if grant is None or grant["expires"] < time.time():
            return 400, {"error": "invalid_grant", "error_description": "unknown, used or expired code"}
        if grant["client_id"] != client_id or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "client or redirect_uri mismatch"}
        if grant.get("code_challenge"):
            verifier = form.get("code_verifier")
            if not verifier or _b64url(hashlib.sha256(verifier.encode("ascii")).digest()) != grant["code_challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        user = self.users[grant["user"]]
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[access_token] = {"user": user.sub, "exp": time.time() + TOKEN_TTL_SECONDS}
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
            "scope": grant.get("scope", "openid"),
            "id_token": self.id_token(user, nonce=grant.get("nonce"), access_token=access_token,
                                      auth_time=grant["auth_time"]),
        }

    def userinfo_for(self, authorization: str | None) -> dict[str, Any] | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        with self._lock:
            entry = self._access_tokens.get(authorization.split(None, 1)[1].strip())
        if entry is None or entry["exp"] < time.time():
            return None
        return self.user_claims(self.users[entry["user"]])

    # ------------------------------------------------------------------ HTTP

    def login_page(self, page_id: str, request: dict[str, Any]) -> str:
        buttons = "\n".join(
            f"<form method='post' action='/authorize/login'>"
            f"<input type='hidden' name='request' value='{page_id}'>"
            f"<input type='hidden' name='user' value='{html.escape(u.sub, quote=True)}'>"
            f"<button type='submit' data-email='{html.escape(u.email, quote=True)}'>"
            f"Sign in as {html.escape(u.name)} ({html.escape(u.email)})</button></form>"
            for u in self.users.values()
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Test identity provider</title>"
            "<style>body{font-family:sans-serif;margin:3em}button{display:block;margin:.5em 0;padding:.6em 1em;"
            "font-size:1em;min-width:28em;text-align:left}</style></head><body>"
            "<h1>Test identity provider</h1>"
            f"<p>Client <code>{html.escape(request['client_id'])}</code> asks you to sign in. Choose an account:</p>"
            f"{buttons}"
            "<form method='post' action='/authorize/login'>"
            f"<input type='hidden' name='request' value='{page_id}'>"
            "<button type='submit' name='deny' value='1'>Cancel</button></form>"
            "</body></html>"
        )

    def _handler(provider) -> type[BaseHTTPRequestHandler]:  # noqa: N805 - closes over the provider
        class Handler(BaseHTTPRequestHandler):
            server_version = "TestOIDC/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            # ---- helpers

            def _record(self, params: dict[str, str]) -> None:
                with provider._lock:
                    provider.log.append({"method": self.command, "path": urlsplit(self.path).path,
                                         "params": params, "auth": self.headers.get("Authorization", "")[:6]})

            def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(data).encode(), "application/json", headers)

            def _html(self, status: int, text: str) -> None:
                self._send(status, text.encode(), "text/html; charset=utf-8")

            def _redirect(self, location: str) -> None:
                self._send(302, b"", "text/plain", {"Location": location})

            def _query(self) -> dict[str, str]:
                return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8") if length else ""
                return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

            # ---- routes

            def do_GET(self) -> None:  # noqa: N802
                path, params = urlsplit(self.path).path, self._query()
                self._record(params)
                if path == "/.well-known/openid-configuration":
                    self._json(200, provider.metadata())
                elif path == "/jwks":
                    self._json(200, provider.jwks())
                elif path == "/authorize":
                    self._authorize(params)
                elif path == "/userinfo":
                    self._userinfo()
                elif path == "/logout":
                    self._logout(params)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:  # noqa: N802
                path, form = urlsplit(self.path).path, self._form()
                self._record({k: v for k, v in form.items() if k not in ("client_secret", "code_verifier")})
                if path == "/token":
                    status, body = provider.exchange(form, self.headers.get("Authorization"))
                    extra = {"WWW-Authenticate": "Basic"} if status == 401 else None
                    self._json(status, body, extra)
                elif path == "/authorize/login":
                    self._login(form)
                elif path == "/userinfo":
                    self._userinfo()
                else:
                    self._json(404, {"error": "not_found"})

            def _authorize(self, params: dict[str, str]) -> None:
                redirect_uri = params.get("redirect_uri", "")
                if params.get("client_id") != provider.client_id:
                    return self._html(400, "<h1>Unknown client</h1>")
                if redirect_uri not in provider.redirect_uris:
                    # Never redirect to an unregistered URI: show the error instead.
                    return self._html(400, f"<h1>redirect_uri not registered</h1><p>{html.escape(redirect_uri)}</p>")

                def fail(error: str, description: str) -> None:
                    q = {"error": error, "error_description": description}
                    if "state" in params:
                        q["state"] = params["state"]
                    self._redirect(f"{redirect_uri}?{urlencode(q)}")

                if params.get("response_type") != "code":
                    return fail("unsupported_response_type", "only the code flow is supported")
                if "openid" not in params.get("scope", "").split():
                    return fail("invalid_scope", "the openid scope is required")
                if params.get("response_mode", "query") != "query":
                    return fail("invalid_request", "only response_mode=query is supported")
                method = params.get("code_challenge_method")
                if params.get("code_challenge") and method not in (None, "S256"):
                    return fail("invalid_request", "only S256 PKCE is supported")
                request = {
                    "client_id": params["client_id"],
                    "redirect_uri": redirect_uri,
                    "scope": params.get("scope", ""),
                    "state": params.get("state"),
                    "nonce": params.get("nonce"),
                    "code_challenge": params.get("code_challenge"),
                }
                hint = params.get("login_hint", "").lower()
                hinted = [u for u in provider.users.values() if hint and hint in (u.email.lower(), u.sub.lower())]
                if hinted:
                    return self._redirect(provider.redirect_with_code(request, hinted[0]))
                page_id = secrets.token_urlsafe(16)
                with provider._lock:
                    provider._pending[page_id] = request
                self._html(200, provider.login_page(page_id, request))

            def _login(self, form: dict[str, str]) -> None:
                with provider._lock:
                    request = provider._pending.pop(form.get("request", ""), None)
                if request is None:
                    return self._html(400, "<h1>This sign-in request has expired</h1>")
                if form.get("deny"):
                    q = {"error": "access_denied", "error_description": "the user cancelled"}
                    if request.get("state") is not None:
                        q["state"] = request["state"]
                    return self._redirect(f"{request['redirect_uri']}?{urlencode(q)}")
                user = provider.users.get(form.get("user", ""))
                if user is None:
                    return self._html(400, "<h1>Unknown user</h1>")
                self._redirect(provider.redirect_with_code(request, user))

            def _userinfo(self) -> None:
                info = provider.userinfo_for(self.headers.get("Authorization"))
                if info is None:
                    return self._json(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
                self._json(200, info)

            def _logout(self, params: dict[str, str]) -> None:
                target = params.get("post_logout_redirect_uri")
                if target and target in provider.redirect_uris:
                    if params.get("state"):
                        target += ("&" if urlsplit(target).query else "?") + urlencode({"state": params["state"]})
                    return self._redirect(target)
                self._html(200, "<h1>You are signed out of the test identity provider</h1>")

        return Handler
