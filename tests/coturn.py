"""A real coturn (Debian's ``turnserver``) on loopback for the tests: TURN over UDP and TCP on one
port and over TLS on another, with the node's kind of time-limited credentials
(``use-auth-secret``) and a certificate from a certificate authority made for the run."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import os
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import eventually
from tests.redis_server import free_port

TURNSERVER = Path("/usr/bin/turnserver")
# Skipped without coturn, except in CI (CI set), where that fails: see tests/conftest.py.
needs_coturn = pytest.mark.needs(
    TURNSERVER, "coturn's turnserver (Debian's coturn package; `make test` installs it)"
)

SECRET = "test-turn-secret-0123456789"
REALM = "lampio.test"
RELAY_PORTS = range(49152, 65536)  # coturn's default relay range, the relayed candidates' ports


@dataclass(frozen=True)
class Coturn:
    """A running coturn: its ports, shared secret, the CA that signed its certificate, its log."""

    port: int  # TURN over UDP and TCP
    tls_port: int  # TURN over TLS
    secret: str
    ca_file: Path
    cert_file: Path
    log_file: Path

    def log(self) -> str:
        """What coturn has logged so far (for failure messages)."""
        return self.log_file.read_text(errors="replace")

    def spki_hash(self) -> str:
        """Base64 SHA-256 of the certificate's public key, as Chromium's
        ``--ignore-certificate-errors-spki-list`` takes it."""
        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        return base64.b64encode(digest.finalize()).decode()

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context that trusts only this run's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1: (CA file, certificate file, key file)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lämpiö test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (directory / name for name in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_file, 0o600)
    return ca_file, cert_file, key_file


# A STUN Binding request (RFC 5389): type, length 0, magic cookie, transaction id.
BINDING_REQUEST = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"lampio-ready"


async def _answers_binding(port: int, context: ssl.SSLContext | None) -> bool:
    """Whether coturn answers a STUN Binding request over TCP (or TLS) on ``port``."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except OSError:
        return False
    try:
        writer.write(BINDING_REQUEST)
        reply = await asyncio.wait_for(reader.readexactly(20), 2)
        return reply[:2] == b"\x01\x01" and reply[8:20] == BINDING_REQUEST[8:20]
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        return False
    finally:
        writer.close()


@asynccontextmanager
async def coturn(directory: Path, secret: str = SECRET) -> AsyncIterator[Coturn]:
    """coturn on 127.0.0.1 only (listening and relaying), answering on TCP and TLS; stopped after.

    Loopback peers are allowed (coturn refuses them by default, and the node under test is on
    127.0.0.1); no external IP, no CLI, no DTLS, no configuration file of the machine's.
    """
    ca_file, cert_file, key_file = make_certificate(directory)
    server = Coturn(
        free_port(), free_port(), secret, ca_file, cert_file, directory / "turnserver.log"
    )
    with server.log_file.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *[
                str(TURNSERVER),
                "-n",  # no turnserver.conf
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={server.port}",
                f"--tls-listening-port={server.tls_port}",
                f"--cert={cert_file}",
                f"--pkey={key_file}",
                "--use-auth-secret",
                f"--static-auth-secret={secret}",
                f"--realm={REALM}",
                "--fingerprint",
                "--allow-loopback-peers",
                "--no-multicast-peers",
                "--no-cli",
                "--no-dtls",
                "--no-rfc5780",
                f"--userdb={directory / 'turndb'}",
                f"--pidfile={directory / 'turnserver.pid'}",
                "--log-file=stdout",
                "--simple-log",
                "--verbose",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        async def ready() -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"turnserver exited with {proc.returncode}:\n{server.log()}")
            return await _answers_binding(server.port, None) and await _answers_binding(
                server.tls_port, server.client_context()
            )

        await eventually(ready, 10, "turnserver answers on TCP and TLS", interval=0.05)
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
