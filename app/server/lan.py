"""Serving devices on the local network over HTTPS: the CA download and its instructions, and the plain-HTTP listener.

Browsers install the app (service worker, Cache Storage, WebGPU) only in a secure context. With ``--tls-cert``,
``fieldllm serve`` answers HTTPS on ``--port``; devices trust it once they have installed the local CA that made the
certificate (``fieldllm cert``). To get there from a plain ``http://`` address:

- ``/ca`` (on both listeners): what to install and how, on each kind of device, with the CA's fingerprint to compare;
  without HTTPS, how the server's operator turns it on.
- ``/ca.crt``: the CA certificate itself, as ``application/x-x509-ca-cert`` (phones offer to install that type).
- ``--http-port``: every other plain-HTTP request is redirected (307, so that nothing is cached for good) to the same
  path on HTTPS, under the same host name. The Host check applies there too.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .errors import APIError, on_api_error, on_http_exception
from .headers import SecurityHeaders
from .hosts import HostCheck, host_name
from .settings import Settings
from .tls import CA_CERT, read_ca_pem, read_server_cert

CA_MEDIA_TYPE = "application/x-x509-ca-cert"
NO_STORE = "no-store"


@dataclass(frozen=True)
class Lan:
    """What the server knows about its HTTPS set-up: the certificate's names, and the CA that devices install."""

    https: bool = False
    cert_names: tuple[str, ...] = ()
    ca_pem: bytes | None = None
    ca_fingerprint: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Lan:
        """Reads --tls-cert and the CA (--tls-ca, or ca.crt beside the certificate); InputError, one line, when
        one is unreadable."""
        if settings.tls_cert is None:
            return cls()
        try:
            cert = read_server_cert(settings.tls_cert)
        except OSError as e:
            from model_prep.errors import InputError

            raise InputError(f"--tls-cert {settings.tls_cert}: {e.strerror}") from None
        ca_path = settings.tls_ca or settings.tls_cert.parent / CA_CERT
        if settings.tls_ca is None and not ca_path.exists():
            return cls(True, cert.names)
        pem, fp = read_ca_pem(ca_path)
        return cls(True, cert.names, pem, fp)


def _https_base(request: Request, https_port: int | None) -> str | None:
    """The HTTPS address of this server under the name the device used, or None without HTTPS."""
    if request.url.scheme == "https":
        return f"https://{request.url.netloc}"
    if https_port is None:
        return None
    name = host_name(request.headers.get("host", "")) or "localhost"
    name = f"[{name}]" if ":" in name else name
    return f"https://{name}" + ("" if https_port == 443 else f":{https_port}")


class CaRoutes:
    """/ca.crt and /ca; ``https_port`` is the HTTPS listener's port when this serves the plain-HTTP one."""

    def __init__(self, lan: Lan, https_port: int | None = None):
        self.lan = lan
        self.https_port = https_port

    def routes(self) -> list[Route]:
        return [Route("/ca.crt", self.ca_cert, methods=["GET", "HEAD"]),
                Route("/ca", self.instructions, methods=["GET", "HEAD"])]

    async def ca_cert(self, request: Request) -> Response:
        if self.lan.ca_pem is None:
            raise APIError(404, "this server offers no CA certificate (it serves HTTPS with --tls-cert, and the CA "
                                "is ca.crt beside it or --tls-ca); see /ca")
        return Response(self.lan.ca_pem, media_type=CA_MEDIA_TYPE,
                        headers={"content-disposition": 'attachment; filename="fieldllm-ca.crt"',
                                 "cache-control": NO_STORE})

    async def instructions(self, request: Request) -> Response:
        base = _https_base(request, self.https_port if self.lan.https else None)
        return HTMLResponse(instructions_page(self.lan, base), headers={"cache-control": NO_STORE})


def instructions_page(lan: Lan, https_base: str | None) -> str:
    head = ("<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            "<title>fieldllm: install over HTTPS</title>")
    why = ("<p>Browsers store the app for offline use (and give it the GPU) only on a secure connection: "
           "<code>https://</code>, or the server's own machine as <code>localhost</code>.</p>")
    if https_base is None:
        return (head + "<h1>This server does not serve HTTPS</h1>" + why +
                "<p>Until it does, devices on the network can use the app only while connected: their questions go "
                "to the server. To turn HTTPS on, whoever runs the server runs <code>fieldllm cert</code> once, then "
                "starts <code>fieldllm serve</code> with the <code>--tls-cert</code> and <code>--tls-key</code> it "
                "prints; this page then tells each device what to install.</p></html>")
    app = html.escape(https_base + "/")
    ca = ""
    if lan.ca_pem is not None:
        ca = ("<h2>1. Install the certificate authority (once per device)</h2>"
              "<p><a href=/ca.crt download=fieldllm-ca.crt>Download the CA certificate</a> "
              "(<code>fieldllm-ca.crt</code>). Its SHA-256 fingerprint, to compare with what the device shows:</p>"
              f"<p><code>{html.escape(lan.ca_fingerprint or '')}</code></p>"
              "<ul><li><b>Android</b>: Settings → Security → Encryption &amp; credentials → Install a certificate → "
              "CA certificate, then pick the downloaded file.</li>"
              "<li><b>iPhone, iPad</b> (open this page in Safari): download it and allow the profile; Settings → "
              "General → VPN &amp; Device Management → install it; then Settings → General → About → Certificate "
              "Trust Settings → turn on full trust for it.</li>"
              "<li><b>Windows</b>: open the file → Install Certificate → Local Machine → Place all certificates in "
              "“Trusted Root Certification Authorities”.</li>"
              "<li><b>macOS</b>: open the file (Keychain Access, System keychain), double-click it → Trust → "
              "Always Trust.</li>"
              "<li><b>ChromeOS, Linux</b>: in Chrome, chrome://settings/certificates → Authorities → Import → "
              "trust it for identifying websites.</li></ul>"
              "<p>This authority can vouch only for local names and addresses (<code>.local</code>, "
              "<code>.lan</code>, private networks): it cannot stand in for any site on the internet.</p>"
              "<h2>2. Open the app over HTTPS</h2>")
    return (head + "<h1>Install fieldllm on this device</h1>" + why + ca +
            f"<p>Open <a href='{app}'>{app}</a>, then install the model from there. It then works with no network "
            "at all.</p></html>")


class _Redirect:
    def __init__(self, https_port: int):
        self.https_port = https_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        base = _https_base(request, self.https_port)
        target = f"{base}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
        await RedirectResponse(target, status_code=307, headers={"cache-control": NO_STORE})(scope, receive, send)


def create_redirect_app(settings: Settings, lan: Lan, https_port: int) -> Starlette:
    """The plain-HTTP listener: the CA and its instructions, and a redirect to HTTPS for everything else."""
    routes = CaRoutes(lan, https_port).routes()
    middleware = [Middleware(SecurityHeaders),
                  Middleware(HostCheck, allowed=settings.allowed_hosts(lan.cert_names))]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={APIError: on_api_error, 404: on_http_exception, 405: on_http_exception})
    app.router.default = _Redirect(https_port)
    return app

