"""`fieldllm cert`: a local certificate authority and a server certificate, so that tablets get a secure context.

Browsers give a page service workers, Cache Storage and WebGPU only in a secure context: https, or localhost. A
server on the local network therefore needs a certificate that the devices trust. No public CA issues one for
``192.168.1.20`` or ``fieldbox.local``, so this module makes a small CA of its own; each device installs the CA
certificate once (the server offers it at ``/ca.crt``, with instructions at ``/ca``), and then trusts the server.

Files, in one folder (default ``~/.local/share/fieldllm/tls``, or ``$XDG_DATA_HOME/fieldllm/tls``):

- ``ca.crt``: the CA certificate, for devices to install. ``ca.key``: its private key (0600). Made once and never
  replaced: devices that installed the CA keep trusting the server when its certificate is renewed.
- ``server.crt``, ``server.key`` (0600): what ``fieldllm serve --tls-cert --tls-key`` uses. Replaced only with
  ``--force``.

The CA is limited by X.509 name constraints to local names (``.local``, ``.lan``, ``.home.arpa``, ``.internal``,
``localhost``, and the names given when it was made) and private, loopback and link-local addresses: a device that
trusts it cannot be fooled by it for any public web site, even if the CA key leaked. Keys are ECDSA P-256. The server
certificate lasts 397 days by default (iOS and macOS refuse server certificates valid for more than 825 days).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from model_prep.errors import InputError

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
CA_DAYS = 3650
SERVER_DAYS = 397
MAX_SERVER_DAYS = 825
# what the CA may certify: local name suffixes, and private, loopback, link-local and shared (CGNAT) addresses
LOCAL_SUFFIXES = ("local", "lan", "home.arpa", "internal", "localhost")
LOCAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",
    "::1/128", "fc00::/7", "fe80::/10"))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def default_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fieldllm" / "tls"


def machine_addresses() -> list[Address]:
    """Loopback plus this machine's addresses that its host name resolves to and that the default route leaves from.

    Finding the route "connects" a UDP socket, which sends no packet.
    """
    found: list[Address] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP):
            found.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
    except OSError:
        pass
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.append(ipaddress.ip_address(str(s.getsockname()[0]).split("%")[0]))
        except OSError:
            pass
    return _unique(a for a in found if not a.is_unspecified)


T = TypeVar("T")


def _unique(items: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(items))


def parse_name(text: str) -> str:
    name = text.strip().lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or any(not label or len(label) > 63 for label in labels) or any(
            not all(c.isalnum() or c == "-" for c in label) or label.startswith("-") or label.endswith("-")
            for label in labels):
        raise InputError(f"--name {text!r} is not a host name; write e.g. fieldbox.local (addresses go in --ip)")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    raise InputError(f"--name {text!r} is an address; pass it with --ip")


def parse_address(text: str) -> Address:
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        raise InputError(f"--ip {text!r} is not an IP address; write e.g. 192.168.1.20") from None


def within(name: str, subtrees: Iterable[str]) -> bool:
    """Whether a DNS name constraint's permitted subtrees cover ``name``."""
    return any(name == s or name.endswith("." + s) for s in subtrees)


@dataclass(frozen=True)
class Issued:
    folder: Path
    new_ca: bool
    names: tuple[str, ...]
    addresses: tuple[Address, ...]
    not_after: dt.datetime
    ca_fingerprint: str

    @property
    def ca_cert(self) -> Path:
        return self.folder / CA_CERT

    @property
    def server_cert(self) -> Path:
        return self.folder / SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.folder / SERVER_KEY


def make_certificates(folder: Path, names: Sequence[str], addresses: Sequence[Address], days: int = SERVER_DAYS,
                      force: bool = False, now: dt.datetime | None = None) -> Issued:
    """Make the CA (unless the folder has one) and a server certificate for ``names`` and ``addresses``.

    Refuses (InputError, one line) to replace a server certificate without ``force``, and never replaces the CA.
    Everything is written to temporary files first: on any failure, the folder is as it was.
    """

    if not names and not addresses:
        raise InputError("give the certificate at least one --name or --ip")
    if not 1 <= days <= MAX_SERVER_DAYS:
        raise InputError(f"--days {days} is out of range (1..{MAX_SERVER_DAYS}: iOS and macOS refuse longer-lived "
                         "server certificates)")
    names, addresses = _unique(names), _unique(addresses)
    now = now or dt.datetime.now(dt.UTC)
    ca_cert_path, ca_key_path = folder / CA_CERT, folder / CA_KEY
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is not a folder; pass --dir DIR")
    has_cert, has_key = ca_cert_path.exists(), ca_key_path.exists()
    if has_cert != has_key:
        missing = ca_key_path if has_cert else ca_cert_path
        raise InputError(f"{missing} is missing but its pair is there: restore it, or move the folder {folder} away "
                         "to make a new CA (devices must then install the new one)")
    for path in (folder / SERVER_CERT, folder / SERVER_KEY):
        if path.exists() and not force:
            raise InputError(f"{path} exists; pass --force to replace the server certificate (the CA stays)")

    if has_cert:
        ca_cert, ca_key = _read_ca(ca_cert_path, ca_key_path)
        _check_allowed(ca_cert, names, addresses, folder)
        new_ca = False
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key, names, addresses, now)
        new_ca = True
    if now > ca_cert.not_valid_after_utc - dt.timedelta(days=days):
        raise InputError(f"the CA at {ca_cert_path} expires on {ca_cert.not_valid_after_utc:%Y-%m-%d}, before this "
                         f"certificate would: move the folder {folder} away to make a new CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(key, names, addresses, ca_cert, ca_key, now, days)

    files: list[tuple[Path, bytes, int, bool]] = []  # path, content, mode, may replace
    if new_ca:
        files += [(ca_key_path, _key_pem(ca_key), 0o600, False), (ca_cert_path, _cert_pem(ca_cert), 0o644, False)]
    files += [(folder / SERVER_KEY, _key_pem(key), 0o600, force), (folder / SERVER_CERT, _cert_pem(cert), 0o644, force)]
    _write_all(folder, files)
    return Issued(folder, new_ca, tuple(names), tuple(addresses), cert.not_valid_after_utc, fingerprint(ca_cert))


def _read_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:

    try:
        ca_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError as e:
        raise InputError(f"the CA in {cert_path.parent} cannot be read ({e}); move the folder away to make a new "
                         "one") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or ca_key.public_key() != ca_cert.public_key():
        raise InputError(f"{key_path} is not the key of {cert_path}; move the folder {cert_path.parent} away to make "
                         "a new CA")
    return ca_cert, ca_key


def _check_allowed(ca_cert: x509.Certificate, names: Sequence[str], addresses: Sequence[Address], folder: Path) -> None:

    try:
        nc = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return
    dns = [s.value for s in nc.permitted_subtrees or [] if isinstance(s, x509.DNSName)]
    nets = [s.value for s in nc.permitted_subtrees or []
            if isinstance(s, x509.IPAddress) and isinstance(s.value, ipaddress.IPv4Network | ipaddress.IPv6Network)]
    for name in names:
        if not within(name, dns):
            raise InputError(f"the existing CA in {folder} may not certify {name!r} (it was made for local names "
                             f"only: {', '.join(dns)}); move the folder away to make a new CA, which devices must "
                             "install again")
    for a in addresses:
        if not any(a.version == n.version and a in n for n in nets):
            raise InputError(f"the existing CA in {folder} may not certify the address {a} (only local addresses); "
                             "move the folder away to make a new CA, which devices must install again")


def _ca_certificate(key: ec.EllipticCurvePrivateKey, names: Sequence[str], addresses: Sequence[Address],
                    now: dt.datetime) -> x509.Certificate:

    host = (names[0] if names else str(addresses[0])).split(".")[0]
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fieldllm"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"fieldllm local CA ({host}, {now:%Y-%m-%d})")])
    dns = _unique([*LOCAL_SUFFIXES, *(n for n in names if not within(n, LOCAL_SUFFIXES))])
    nets = _unique([*LOCAL_NETWORKS, *(ipaddress.ip_network(a) for a in addresses
                                       if not any(a.version == n.version and a in n for n in LOCAL_NETWORKS))])
    public = key.public_key()
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.NameConstraints(
                permitted_subtrees=[*(x509.DNSName(d) for d in dns), *(x509.IPAddress(n) for n in nets)],
                excluded_subtrees=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))


def _server_certificate(key: ec.EllipticCurvePrivateKey, names: Sequence[str], addresses: Sequence[Address],
                        ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: dt.datetime,
                        days: int) -> x509.Certificate:

    cn = names[0] if names else str(addresses[0])
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fieldllm"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, cn[:64])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([*(x509.DNSName(n) for n in names),
                                                        *(x509.IPAddress(a) for a in addresses)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(ca_key, hashes.SHA256()))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:

    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _cert_pem(cert: x509.Certificate) -> bytes:

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate as devices show it: upper-case hex pairs joined by colons."""

    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _write_all(folder: Path, files: Sequence[tuple[Path, bytes, int, bool]]) -> None:
    """Write every file or none: temporary files first (created with their final mode, so a key is never readable
    by others, even for a moment), then moved into place; a file that must not be replaced is linked, which fails
    if it appeared meanwhile."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    temps: list[Path] = []
    placed: list[Path] = []
    try:
        for path, data, mode, _ in files:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            temps.append(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)  # the umask may have taken bits from a public certificate
        for (path, _, _, replace), tmp in zip(files, temps, strict=True):
            if replace:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise InputError(f"{path} appeared while writing; nothing was changed") from None
                placed.append(path)
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


# --- what the server reads --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerCert:
    names: tuple[str, ...]
    addresses: tuple[Address, ...]
    not_after: dt.datetime
    spki_sha256: bytes


def read_server_cert(path: Path) -> ServerCert:
    """The names and addresses a PEM certificate (its first one) is valid for. InputError when it is not one."""

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise InputError(f"--tls-cert {path} is not a PEM certificate (make one with `fieldllm cert`)") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))
        addresses = tuple(a for a in san.get_values_for_type(x509.IPAddress)
                          if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address))
    except x509.ExtensionNotFound:
        names, addresses = (), ()
    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    return ServerCert(names, addresses, cert.not_valid_after_utc, digest.finalize())


def read_ca_pem(path: Path) -> tuple[bytes, str]:
    """The CA certificate's PEM and its fingerprint. InputError when it is not a CA certificate."""

    try:
        data = path.read_bytes()
        cert = x509.load_pem_x509_certificate(data)
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except OSError as e:
        raise InputError(f"--tls-ca {path}: {e.strerror}") from None
    except (ValueError, x509.ExtensionNotFound):
        is_ca = False
    if not is_ca:
        raise InputError(f"--tls-ca {path} is not a CA certificate (`fieldllm cert` writes ca.crt)")
    return data, fingerprint(cert)
