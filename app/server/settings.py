"""Every setting of `fieldllm serve` in one typed, frozen object, read from flags, then environment, then defaults.

Each field carries its flag, environment variable and help text, so ``--help`` and the parser cannot drift apart.
Standard library only: the command line imports this module without loading the server.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "FIELDLLM_"
DEFAULT_DIST = Path("dist")
DEFAULT_PACKAGE = Path("build/models/smollm2-135m-instruct")  # where `fieldllm prepare` puts the default model
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PLAIN_PORT, TLS_PORT = 8000, 8443  # --port's default without and with --tls-cert; with it, 8000 redirects to 8443


class SettingsError(ValueError):
    """A flag or environment variable has an unusable value (the message names which)."""


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise SettingsError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise SettingsError(f"{value} is out of range ({low}..{high if high is not None else ''})")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{text!r} must be a positive number of seconds")
    return value


def _origin(text: str) -> str:
    # browsers send Origin as scheme://host[:port], lower-case, no path: compare in that form
    value = text.strip().rstrip("/").lower()
    if value != "*" and ("://" not in value or "/" in value.split("://", 1)[1]):
        raise SettingsError(f"{text!r} is not an origin; write e.g. http://192.168.1.20:8000")
    return value


def _host_name(text: str) -> str:
    return text.strip().lower().removeprefix("[").removesuffix("]")  # [::1] -> ::1, as hosts.host_name gives


def _http_port(text: str) -> int | None:
    return None if text.strip().lower() in ("off", "none", "no") else _int_in(0, 65535)(text)


def _switch(text: str) -> bool:
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{text!r} is not one of 1, true, yes, on, 0, false, no, off")


ENGINES = ("native", "numpy")


def _engine(text: str) -> str:
    if text.strip().lower() not in ENGINES:
        raise SettingsError(f"{text!r} is not one of {', '.join(ENGINES)}")
    return text.strip().lower()


def _log_level(text: str) -> str:
    if text.lower() not in ("critical", "error", "warning", "info", "debug"):
        raise SettingsError(f"{text!r} is not one of critical, error, warning, info, debug")
    return text.lower()


def _setting(flag: str, help: str, parse: Callable[[str], Any] = str, repeat: bool = False,
             metavar: str | None = None, switch: bool = False, default: str | None = None) -> dict[str, Any]:
    """A field's metadata: how it is given on the command line and in the environment, and what it means.
    ``switch``: a flag without a value (the environment variable takes 1/0); ``default``: the default as --help
    words it, where it is not simply the field's."""
    env = ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()
    return {"flag": flag, "env": env, "help": help, "parse": _switch if switch else parse, "repeat": repeat,
            "metavar": metavar, "switch": switch, "default": default}


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata=_setting(
        "--host", "interface to listen on; 0.0.0.0 for the local network (then --token or --no-auth is required, and "
                  "--tls-cert for browsers to install the app)", metavar="ADDRESS"))
    port: int = field(default=PLAIN_PORT, metadata=_setting(
        "--port", "TCP port (HTTPS with --tls-cert)", _int_in(0, 65535),
        default=f"{PLAIN_PORT}, or {TLS_PORT} with --tls-cert"))
    tls_cert: Path | None = field(default=None, metadata=_setting(
        "--tls-cert", "serve HTTPS with this PEM certificate (browsers install the app only over HTTPS, or from "
                      "localhost); `fieldllm cert` makes one with its own local CA", Path, metavar="FILE"))
    tls_key: Path | None = field(default=None, metadata=_setting(
        "--tls-key", "the private key of --tls-cert (PEM)", Path, metavar="FILE"))
    tls_ca: Path | None = field(default=None, metadata=_setting(
        "--tls-ca", "the CA certificate that devices install to trust --tls-cert, offered at /ca.crt with "
                    "instructions at /ca", Path, metavar="FILE", default="ca.crt beside --tls-cert, if there"))
    http_port: int | None = field(default=None, metadata=_setting(
        "--http-port", "with --tls-cert, also listen for plain HTTP here and redirect it to HTTPS, except the CA "
                       "(/ca.crt) and its instructions (/ca); 'off' for no such listener", _http_port,
        metavar="PORT", default=f"{PLAIN_PORT} with --tls-cert unless --port is {PLAIN_PORT}"))
    dist: Path = field(default=DEFAULT_DIST, metadata=_setting(
        "--dist", "the built app folder to serve (from `fieldllm build`); when missing, the API still works and / "
                  "says how to build the app", Path, metavar="DIR"))
    package: Path = field(default=DEFAULT_PACKAGE, metadata=_setting(
        "--package", "model package for the local engine (from `fieldllm prepare`; when the default is "
                     "missing, the one package under build/models/); loaded once at start-up", Path, metavar="DIR"))
    engine: str = field(default="native", metadata=_setting(
        "--engine", "the local engine: 'native' (the CPU engine's C kernels, compiled for this machine on first use "
                    "or by scripts/setup-python; needs a C compiler) or 'numpy' (the reference engine, slower)",
        _engine, metavar="NAME"))
    threads: int = field(default=0, metadata=_setting(
        "--threads", "threads of the native engine for prompts; 0: half the cores, at most 8 (the rest stays for the "
                     "server and its clients: threads that wait for each other at every step suffer most on a busy "
                     "machine)", _int_in(0, 64), metavar="N"))
    decode_threads: int = field(default=0, metadata=_setting(
        "--decode-threads", "threads of the native engine per answer token; 0: half of --threads (as llama.cpp "
                            "splits them). Each token is many short steps that wait for every thread: more only help "
                            "on cores nothing else uses", _int_in(0, 64), metavar="N"))
    upstream: str | None = field(default=None, metadata=_setting(
        "--upstream", "instead of --package, forward requests to this OpenAI-compatible server's base URL (vLLM, "
                      "llama.cpp server, Ollama), e.g. http://127.0.0.1:8080/v1", metavar="URL"))
    upstream_token: str | None = field(default=None, metadata=_setting(
        "--upstream-token", "bearer token sent to the upstream server", metavar="TOKEN"))
    upstream_parallel: int = field(default=4, metadata=_setting(
        "--upstream-parallel", "requests forwarded to the upstream at once (the local engine always runs one)",
        _int_in(1, 1024), metavar="N"))
    context: int | None = field(default=None, metadata=_setting(
        "--context", "KV cache length of the local engine in tokens (default 4096, capped by the model's); longer "
                     "prompts get 400", _int_in(16), metavar="TOKENS"))
    max_tokens: int = field(default=512, metadata=_setting(
        "--max-tokens", "longest answer in tokens: the default for requests that name none, and the most a request "
                        "may ask for (more gets 400)", _int_in(1, 1 << 20), metavar="TOKENS"))
    queue_size: int = field(default=4, metadata=_setting(
        "--queue-size", "requests per model that may wait behind the running ones; past that, 429 with Retry-After",
        _int_in(0, 10000), metavar="N"))
    queue_timeout: float = field(default=120.0, metadata=_setting(
        "--queue-timeout", "longest wait in the queue before 429", _seconds, metavar="SECONDS"))
    generation_timeout: float = field(default=300.0, metadata=_setting(
        "--generation-timeout", "longest time one answer may run; it then ends with finish_reason 'length' (for "
                                "--upstream: the read timeout)", _seconds, metavar="SECONDS"))
    blas_threads: int = field(default=1, metadata=_setting(
        "--blas-threads", "threads numpy's BLAS uses for the numpy engine's matrix products while it answers; 0 "
                          "leaves numpy's default (one per core), which made decode 2.4-2.7x slower on a shared "
                          "2-core machine", _int_in(0, 1024), metavar="N"))
    max_body: int = field(default=1 << 20, metadata=_setting(
        "--max-body", "largest request body in bytes (more gets 413)", _int_in(1024), metavar="BYTES"))
    token: str | None = field(default=None, metadata=_setting(
        "--token", "require `Authorization: Bearer TOKEN` on /v1/ (prefer the environment variable: flags show in "
                   "the process list); the app gets it from the address the server prints (…/#token=TOKEN)",
        metavar="TOKEN"))
    no_auth: bool = field(default=False, metadata=_setting(
        "--no-auth", "on a network address, serve the API without a token: anyone on the network, and any web page "
                     "their browsers open, can use the model", switch=True))
    allow_origin: tuple[str, ...] = field(default=(), metadata=_setting(
        "--allow-origin", "another origin whose pages may call the API (CORS and Private Network Access), e.g. "
                          "http://192.168.1.20:8000; repeatable, comma-separated in the environment; '*' allows any",
        _origin, repeat=True, metavar="ORIGIN"))
    allow_host: tuple[str, ...] = field(default=(), metadata=_setting(
        "--allow-host", "another Host header name the server answers to (guards against DNS rebinding), besides "
                        "localhost, IP addresses, the --tls-cert's names and, on the network, this machine's names; "
                        "repeatable, comma-separated in the environment; '*' turns the check off",
        _host_name, repeat=True, metavar="NAME"))
    audit: Path | None = field(default=None, metadata=_setting(
        "--audit", "append one JSON line per structured answer (response_format or tools) to this file: model, "
                   "sampling, grammar hash, output, timings, and for the app's task screens the readings and the "
                   "rules' verdict", Path, metavar="FILE"))
    log_level: str = field(default="info", metadata=_setting(
        "--log-level", "uvicorn's log level: critical, error, warning, info or debug", _log_level, metavar="LEVEL"))

    def allowed_hosts(self, cert_names: tuple[str, ...] = ()) -> frozenset[str] | None:
        """Host names to accept (IP addresses are always accepted: DNS rebinding needs a name), or None for any
        (only with --allow-host '*'). ``cert_names``: the names in --tls-cert."""
        if "*" in self.allow_host:
            return None
        names = {*LOOPBACK_NAMES, *self.allow_host, *cert_names}
        if not is_loopback(self.host):
            names.update(machine_names())
        return frozenset(names)

    def needs_auth_choice(self) -> bool:
        """On a network address, the user must choose: a token, or --no-auth."""
        return not is_loopback(self.host) and self.token is None and not self.no_auth


def machine_names() -> list[str]:
    """This machine's names as devices on the network may know it: its host name, its mDNS name (.local),
    localhost."""
    names = []
    host = socket.gethostname().lower().rstrip(".")
    if host:
        short = host.split(".")[0]
        names += [host, f"{short}.local", short]
    return list(dict.fromkeys([*names, "localhost"]))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; the help names its environment variable and default."""
    for f in fields(Settings):
        m = f.metadata
        default = m["default"] or (f.default if f.default not in (None, ()) else "none")
        if m["switch"]:
            parser.add_argument(m["flag"], help=f"{m['help']} (env {m['env']}=1)", action="store_true", default=None)
            continue
        help = f"{m['help']} (env {m['env']}; default {default})"
        # flags default to None so that from_sources can tell "not given" from "given the default"
        parser.add_argument(m["flag"], help=help, metavar=m["metavar"], default=None,
                            action="append" if m["repeat"] else "store")


def from_sources(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over defaults. Raises SettingsError naming the source."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        m = f.metadata
        given = getattr(args, f.name, None) if args is not None else None
        if given is not None and m["switch"]:
            values[f.name] = bool(given)
            continue
        if given is not None:
            texts, source = (given if m["repeat"] else [given]), m["flag"]
        elif environ.get(m["env"]):
            raw = environ[m["env"]]
            texts, source = ([t for t in raw.split(",") if t.strip()] if m["repeat"] else [raw]), m["env"]
        else:
            continue
        try:
            parsed = [m["parse"](t) for t in texts]
        except SettingsError as e:
            raise SettingsError(f"{source}: {e}") from None
        values[f.name] = tuple(parsed) if m["repeat"] else parsed[0]
    if values.get("tls_cert") is not None:
        values.setdefault("port", TLS_PORT)
        values.setdefault("http_port", PLAIN_PORT if values["port"] != PLAIN_PORT else None)
    settings = replace(Settings(), **values)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        given, missing = ("--tls-cert", "--tls-key") if settings.tls_key is None else ("--tls-key", "--tls-cert")
        raise SettingsError(f"{given} needs {missing} too (both come from `fieldllm cert`)")
    if settings.http_port is not None and settings.http_port == settings.port != 0:
        raise SettingsError(f"--http-port {settings.http_port} is also --port: pick another, or 'off'")
    if settings.tls_cert is None and settings.http_port is not None:
        raise SettingsError("--http-port redirects to HTTPS: it needs --tls-cert and --tls-key")
    return settings
