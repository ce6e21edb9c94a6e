"""`fieldllm cert`: a local CA limited to local names and addresses, and a server certificate that verifies under it
for exactly the names and addresses given; private keys 0600; nothing replaced silently; errors in one line."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.server import tls

from .conftest import ROOT


def _cert(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_DATA_HOME": str((cwd or ROOT) / "xdg")}
    return subprocess.run([sys.executable, "-m", "app.cli", "cert", *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verify(folder: Path, subject: x509.DNSName | x509.IPAddress, leaf: x509.Certificate | None = None) -> None:
    store = verification.Store([_load(folder / "ca.crt")])
    verifier = verification.PolicyBuilder().store(store).build_server_verifier(subject)
    verifier.verify(leaf or _load(folder / "server.crt"), [])


def test_command_makes_a_ca_and_a_server_certificate(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    r = _cert(["--dir", str(out), "--name", "fieldllm.lan", "--name", "FieldBox.local", "--ip", "192.168.1.20",
               "--ip", "127.0.0.1"])
    assert r.returncode == 0, r.stderr
    assert "made a local certificate authority" in r.stdout and "--tls-cert" in r.stdout and "/ca" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "server.crt", "server.key"]
    # modes: the folder and the keys are the owner's only, the certificates readable
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "ca.crt").stat().st_mode) == 0o644

    ca, leaf = _load(out / "ca.crt"), _load(out / "server.crt")
    # the CA: a CA for server certificates only (path length 0), signing and CRLs only, 10 years
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert 3640 <= (ca.not_valid_after_utc - ca.not_valid_before_utc).days <= 3660
    nc = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    dns = {s.value for s in nc.value.permitted_subtrees or [] if isinstance(s, x509.DNSName)}
    assert {"local", "lan", "home.arpa", "internal", "localhost"} <= dns and "com" not in dns
    # the server certificate: exactly the names and addresses given, server auth, under 398 days
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["fieldllm.lan", "fieldbox.local"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.1.20"),
                                                       ipaddress.ip_address("127.0.0.1")]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 398
    assert leaf.issuer == ca.subject
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    key = serialization.load_pem_private_key((out / "server.key").read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()

    # it verifies under the CA for each name and address, and for nothing else
    for subject in (x509.DNSName("fieldllm.lan"), x509.DNSName("fieldbox.local"),
                    x509.IPAddress(ipaddress.ip_address("192.168.1.20"))):
        _verify(out, subject)
    with pytest.raises(verification.VerificationError):
        _verify(out, x509.DNSName("other.lan"))


def test_the_ca_cannot_vouch_for_a_public_site(tmp_path: Path) -> None:
    """Even with its key, the CA's certificates for internet names fail: a leaked CA cannot impersonate a bank."""
    out = tmp_path / "tls"
    tls.make_certificates(out, ["fieldllm.lan"], [ipaddress.ip_address("10.0.0.2")])
    ca = _load(out / "ca.crt")
    ca_key = serialization.load_pem_private_key((out / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

    def signed(name: str) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
                .sign(ca_key, hashes.SHA256()))

    _verify(out, x509.DNSName("printer.lan"), signed("printer.lan"))  # the same build for a local name passes
    with pytest.raises(verification.VerificationError, match=r"(?i)constraint"):
        _verify(out, x509.DNSName("bank.example.com"), signed("bank.example.com"))


def test_defaults_cover_this_machine(tmp_path: Path) -> None:
    import socket

    r = _cert([], cwd=tmp_path)  # the default folder under $XDG_DATA_HOME
    assert r.returncode == 0, r.stderr
    out = tmp_path / "xdg" / "fieldllm" / "tls"
    san = _load(out / "server.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = san.get_values_for_type(x509.DNSName)
    assert socket.gethostname().lower() in names and "localhost" in names
    assert f"{socket.gethostname().lower().split('.')[0]}.local" in names
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= set(
        san.get_values_for_type(x509.IPAddress))
    _verify(out, x509.DNSName("localhost"))


def test_never_overwritten_silently(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    assert _cert(["--dir", str(out), "--name", "fieldllm.lan"]).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = _cert(["--dir", str(out), "--name", "fieldllm.lan"])
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert "server.crt exists" in r.stderr and "--force" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # --force renews the server certificate under the same CA (devices keep trusting it); the CA is never replaced
    r = _cert(["--dir", str(out), "--name", "fieldllm.lan", "--name", "fieldbox.local", "--force"])
    assert r.returncode == 0 and "used the existing certificate authority" in r.stdout
    assert (out / "ca.key").read_bytes() == before["ca.key"] and (out / "ca.crt").read_bytes() == before["ca.crt"]
    assert (out / "server.key").read_bytes() != before["server.key"]
    _verify(out, x509.DNSName("fieldbox.local"))
    assert stat.S_IMODE((out / "server.key").stat().st_mode) == 0o600
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(("args", "words"), [
    (["--name", "bad name"], "is not a host name"),
    (["--name", "10.0.0.1"], "pass it with --ip"),
    (["--ip", "300.1.1.1"], "is not an IP address"),
    (["--name", "fieldllm.lan", "--days", "900"], "--days 900 is out of range"),
])
def test_bad_arguments_are_one_line_and_write_nothing(tmp_path: Path, args: list[str], words: str) -> None:
    out = tmp_path / "tls"
    r = _cert(["--dir", str(out), *args])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("fieldllm: error:") and r.stderr.strip().count("\n") == 0 and words in r.stderr
    assert not out.exists() or not list(out.iterdir())


def test_half_a_ca_or_a_public_name_under_an_existing_ca_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    assert _cert(["--dir", str(out), "--name", "fieldllm.lan"]).returncode == 0
    r = _cert(["--dir", str(out), "--name", "www.example.com", "--force"])
    assert r.returncode == 2 and "may not certify 'www.example.com'" in r.stderr
    (out / "ca.key").unlink()
    r = _cert(["--dir", str(out), "--name", "fieldllm.lan", "--force"])
    assert r.returncode == 2 and "ca.key is missing" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (out / "ca.key").exists()  # nothing made up in its place: devices trust the old CA
    file = tmp_path / "a-file"
    file.write_text("x")
    r = _cert(["--dir", str(file), "--name", "fieldllm.lan"])
    assert r.returncode == 2 and "is not a folder" in r.stderr


def test_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = _cert(["--dir", str(blocker / "tls"), "--name", "fieldllm.lan"])
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("fieldllm: error:")
