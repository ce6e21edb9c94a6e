"""Settings come from flags, then environment variables, then defaults; `fieldllm serve --help` documents them all."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from app.server.settings import Settings, SettingsError, add_arguments, from_sources

from .conftest import ROOT


def _parse(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_sources(parser.parse_args(argv), env or {})


def test_defaults() -> None:
    s = _parse([])
    assert (s.host, s.port, s.dist, s.upstream, s.token, s.allow_origin) == ("127.0.0.1", 8000, Path("dist"), None,
                                                                              None, ())
    assert s.package == Path("build/models/smollm2-135m-instruct")
    assert s.queue_size >= 1 and s.max_tokens == 512
    assert s.engine == "native"
    assert _parse(["--engine", "NumPy"]).engine == "numpy"
    assert s.allowed_hosts() == {"localhost", "127.0.0.1", "::1"}


def test_environment_then_flags() -> None:
    env = {"FIELDLLM_PORT": "9000", "FIELDLLM_TOKEN": "t0k", "FIELDLLM_QUEUE_SIZE": "2",
           "FIELDLLM_ALLOW_ORIGIN": "http://A.example:8000/, http://b.example", "FIELDLLM_GENERATION_TIMEOUT": "30"}
    s = _parse([], env)
    assert (s.port, s.token, s.queue_size, s.generation_timeout) == (9000, "t0k", 2, 30.0)
    assert s.allow_origin == ("http://a.example:8000", "http://b.example")
    s = _parse(["--port", "9100", "--allow-origin", "http://c.example", "--allow-origin", "http://d.example"], env)
    assert s.port == 9100 and s.token == "t0k"
    assert s.allow_origin == ("http://c.example", "http://d.example")  # flags replace the environment's list


@pytest.mark.parametrize(("argv", "env", "names"), [
    (["--port", "70000"], {}, "--port"),
    (["--queue-size", "-1"], {}, "--queue-size"),
    (["--max-tokens", "many"], {}, "--max-tokens"),
    ([], {"FIELDLLM_QUEUE_TIMEOUT": "0"}, "FIELDLLM_QUEUE_TIMEOUT"),
    ([], {"FIELDLLM_ALLOW_ORIGIN": "example.org"}, "FIELDLLM_ALLOW_ORIGIN"),
    (["--log-level", "loud"], {}, "--log-level"),
    (["--engine", "gpu"], {}, "--engine"),
    ([], {"FIELDLLM_ENGINE": "llama"}, "FIELDLLM_ENGINE"),
])
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        _parse(argv, env)


def test_allowed_hosts() -> None:
    """The Host allowlist holds in every mode: on the network it adds this machine's names, --allow-host and the
    certificate's names; only an explicit '*' turns it off."""
    import socket

    lan = Settings(host="0.0.0.0").allowed_hosts()
    assert lan is not None and {"localhost", "127.0.0.1", socket.gethostname().lower()} <= lan
    assert "attacker.example" not in lan
    assert "field.lan" in (Settings(host="0.0.0.0", allow_host=("field.lan",)).allowed_hosts() or ())
    assert "field.lan" in (Settings().allowed_hosts(cert_names=("field.lan",)) or ())
    assert socket.gethostname().lower() not in (Settings().allowed_hosts() or ())  # loopback: the localhost names
    assert Settings(allow_host=("*",)).allowed_hosts() is None


def test_tls_settings() -> None:
    s = _parse(["--tls-cert", "c.pem", "--tls-key", "k.pem"])
    assert (s.tls_cert, s.tls_key, s.port, s.http_port) == (Path("c.pem"), Path("k.pem"), 8443, 8000)
    s = _parse([], {"FIELDLLM_TLS_CERT": "c.pem", "FIELDLLM_TLS_KEY": "k.pem", "FIELDLLM_PORT": "8000"})
    assert (s.port, s.http_port) == (8000, None)  # HTTPS on 8000: no redirect listener unless asked
    assert _parse(["--tls-cert", "c", "--tls-key", "k", "--http-port", "off"]).http_port is None
    assert _parse(["--tls-cert", "c", "--tls-key", "k", "--http-port", "8080"]).http_port == 8080
    assert _parse(["--no-auth"]).no_auth and _parse([], {"FIELDLLM_NO_AUTH": "1"}).no_auth
    assert not _parse([]).no_auth and (_parse([]).port, _parse([]).http_port) == (8000, None)
    for argv, words in ((["--tls-cert", "c"], "--tls-cert needs --tls-key"),
                        (["--tls-key", "k"], "--tls-key needs --tls-cert"),
                        (["--http-port", "8080"], "needs --tls-cert"),
                        (["--tls-cert", "c", "--tls-key", "k", "--port", "9000", "--http-port", "9000"],
                         "also --port")):
        with pytest.raises(SettingsError, match=words):
            _parse(argv)
    with pytest.raises(SettingsError, match="FIELDLLM_NO_AUTH"):
        _parse([], {"FIELDLLM_NO_AUTH": "maybe"})


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_help_documents_every_setting_and_its_variable() -> None:
    r = _serve("--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for f in fields(Settings):
        assert f.metadata["flag"] in text and f.metadata["env"] in text


def test_command_line_errors_are_one_line() -> None:
    r = _serve("--package", "/nonexistent/pkg", "--port", "0")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("fieldllm: error:") and "/nonexistent/pkg" in r.stderr
    r = _serve("--upstream", "ftp://example.org")
    assert r.returncode == 2 and "not an http(s) URL" in r.stderr and "Traceback" not in r.stderr
    r = _serve("--queue-size", "lots")
    assert r.returncode == 2 and "--queue-size" in r.stderr and "Traceback" not in r.stderr


def test_native_engine_without_a_compiler_is_one_line(smollm2_package: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CC": "no-such-cc", "FIELDLLM_NATIVE_CACHE": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--package", str(smollm2_package), "--port", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("fieldllm: error:") and "--engine numpy" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_network_address_needs_a_token_or_no_auth() -> None:
    """On a network address the user chooses: a token, or --no-auth; never an open API by default."""
    r = _serve("--host", "0.0.0.0", "--port", "0", "--package", "/nonexistent/pkg")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert "--no-auth" in r.stderr and "FIELDLLM_TOKEN" in r.stderr and "web pages" in r.stderr
    # with either, it goes on to the next check (here: the missing package), which proves the first one passed
    for extra in (["--no-auth"], ["--token", "t0k"]):
        r = _serve("--host", "0.0.0.0", "--port", "0", "--package", "/nonexistent/pkg", *extra)
        assert r.returncode == 2 and "/nonexistent/pkg" in r.stderr and "--no-auth" not in r.stderr


def test_tls_files_that_do_not_fit_are_one_line(tmp_path: Path) -> None:
    from app.server.tls import make_certificates

    a = make_certificates(tmp_path / "a", ["fieldllm.lan"], [])
    b = make_certificates(tmp_path / "b", ["fieldllm.lan"], [])
    for cert, key, words in ((a.server_cert, b.server_key, "cannot be used together"),
                             (tmp_path / "none.crt", a.server_key, "no such file"),
                             (a.server_key, a.server_key, "cannot be used together")):
        r = _serve("--tls-cert", str(cert), "--tls-key", str(key), "--port", "0", "--package", "/nonexistent/pkg")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0 and words in r.stderr, r.stderr


def test_port_in_use_is_one_line_with_the_flag_to_change() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = _serve("--port", str(taken.getsockname()[1]))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "is in use" in r.stderr and "--port" in r.stderr


def test_missing_default_package_says_where_it_looked(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "0"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no model package at build/models/" in r.stderr and str(tmp_path) in r.stderr and "--package" in r.stderr


def test_default_package_falls_back_to_the_one_prepare_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.server.serve import package_to_serve
    from app.server.settings import DEFAULT_PACKAGE
    from model_prep.errors import InputError

    monkeypatch.chdir(tmp_path)
    one = tmp_path / "build/models/smollm2-135m-instruct.q4_1"  # `fieldllm prepare` with no --out
    one.mkdir(parents=True)
    (one / "manifest.json").write_text("{}")
    assert package_to_serve(DEFAULT_PACKAGE).resolve() == one
    with pytest.raises(InputError, match="no model package at /nowhere"):
        package_to_serve(Path("/nowhere"))  # a package named by the user is never replaced by a guess
    two = tmp_path / "build/models/other"
    two.mkdir()
    (two / "manifest.json").write_text("{}")
    with pytest.raises(InputError, match="several packages under build/models: say which with --package"):
        package_to_serve(DEFAULT_PACKAGE)
