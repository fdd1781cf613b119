"""Reaching a secured Kafka cluster: aiokafka's TLS and SASL options, and why a connection was refused.

aiokafka reports every failed bootstrap as ``KafkaConnectionError("Unable to bootstrap from
...")``, whatever the cause. `start_checked` starts a client and, when that fails, asks the
brokers once more, by hand, what went wrong: a certificate refused (by either side) raises
`KafkaTlsError`, credentials or a mechanism refused `KafkaAuthenticationError`, each with one line
that says what to fix; an unreachable broker keeps aiokafka's own error.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from pathlib import Path
from typing import Any, Protocol

from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, UnsupportedSaslMechanismError
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


class KafkaSecurityError(ConnectionError):
    """The brokers refused this client's TLS or SASL; the message says what to fix."""


class KafkaTlsError(KafkaSecurityError):
    """TLS failed: the broker's certificate was not trusted or not for its name, or the broker
    refused (or required) the client's certificate."""


class KafkaAuthenticationError(KafkaSecurityError):
    """SASL failed: wrong credentials, or a mechanism the brokers do not offer."""


class _Startable(Protocol):
    async def start(self) -> None: ...


def kafka_security(
    security_protocol: str = "PLAINTEXT",
    sasl_mechanism: str = "PLAIN",
    sasl_username: str | None = None,
    sasl_password: str | None = None,
    sasl_oauth_token_provider: AbstractTokenProvider | None = None,
    ssl_context: ssl.SSLContext | None = None,
    ssl_cafile: str | Path | None = None,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
) -> dict[str, Any]:
    """aiokafka's security keyword arguments (for a producer, consumer or admin client); a missing
    or contradictory one raises `ValueError` before anything connects."""
    if security_protocol not in PROTOCOLS:
        raise ValueError(f"security_protocol must be one of {', '.join(PROTOCOLS)}")
    options: dict[str, Any] = {"security_protocol": security_protocol}
    if security_protocol in ("SSL", "SASL_SSL"):
        if ssl_context is None:
            if (ssl_certfile is None) != (ssl_keyfile is None):
                raise ValueError("ssl_certfile and ssl_keyfile go together")
            ssl_context = create_ssl_context(
                cafile=ssl_cafile, certfile=ssl_certfile, keyfile=ssl_keyfile
            )
        options["ssl_context"] = ssl_context
    elif ssl_context is not None or ssl_cafile or ssl_certfile or ssl_keyfile:
        raise ValueError(f"TLS options given but {security_protocol} does not use TLS")
    if security_protocol.startswith("SASL_"):
        if sasl_mechanism not in MECHANISMS:
            raise ValueError(f"sasl_mechanism must be one of {', '.join(MECHANISMS)}")
        options["sasl_mechanism"] = sasl_mechanism
        if sasl_mechanism == "OAUTHBEARER":
            if sasl_oauth_token_provider is None:
                raise ValueError("OAUTHBEARER needs a sasl_oauth_token_provider")
            options["sasl_oauth_token_provider"] = sasl_oauth_token_provider
        else:
            if not sasl_username or not sasl_password:
                raise ValueError(f"{sasl_mechanism} needs sasl_username and sasl_password")
            options["sasl_plain_username"] = sasl_username
            options["sasl_plain_password"] = sasl_password
    elif sasl_username or sasl_password or sasl_oauth_token_provider:
        raise ValueError(f"SASL credentials given but {security_protocol} does not use SASL")
    return options


async def start_checked(
    client: _Startable, bootstrap: str, options: dict[str, Any], *, timeout: float = 10.0
) -> None:
    """``await client.start()``; a refusal of its TLS or SASL raises `KafkaSecurityError` instead
    of aiokafka's ``Unable to bootstrap``."""
    scram = str(options.get("sasl_mechanism", "")).startswith("SCRAM-")
    try:
        await client.start()
    except (KafkaConnectionError, KeyError, ValueError) as error:
        if not isinstance(error, KafkaConnectionError) and not scram:
            raise  # aiokafka's SCRAM client raises these on a server message it cannot read
        problem = await security_problem(bootstrap, options, timeout=timeout)
        if problem is not None:
            raise problem from error
        raise


async def security_problem(
    bootstrap: str, options: dict[str, Any], *, timeout: float = 10.0
) -> KafkaSecurityError | None:
    """Why the first bootstrap broker that answers refuses a connection made with ``options``
    (None when it accepts one, or when none answers)."""
    protocol = options.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return None
    for host, port in _hosts(bootstrap):
        where = f"{host}:{port}"
        try:
            conn = await create_conn(host, port, request_timeout_ms=int(timeout * 1000), **options)
        except ssl.SSLCertVerificationError as error:
            hint = (
                "connect by a name the certificate holds"
                if "mismatch" in str(error.verify_message)
                else "is the CA file the CA that signed the brokers' certificates?"
            )
            return KafkaTlsError(
                f"{where}: the broker's certificate was refused: {error.verify_message} ({hint})"
            )
        except ssl.SSLError as error:
            return KafkaTlsError(f"{where}: TLS failed: {_reason(error)}")
        except KafkaConnectionError:
            if protocol in ("SSL", "SASL_SSL"):
                alert = await _tls_alert(host, port, options["ssl_context"], timeout)
                if alert is not None:
                    return KafkaTlsError(f"{where}: {alert}")
            if protocol.startswith("SASL_"):
                return KafkaAuthenticationError(
                    f"{where}: the broker closed the connection during SASL "
                    f"{options.get('sasl_mechanism')} authentication"
                )
            continue
        except UnsupportedSaslMechanismError:
            return KafkaAuthenticationError(
                f"{where}: the broker does not offer SASL {options.get('sasl_mechanism')}"
            )
        except KafkaError as error:  # the SASL exchange's answer
            return KafkaAuthenticationError(
                f"{where}: SASL {options.get('sasl_mechanism')} refused: {error}"
            )
        except (KeyError, ValueError):  # a SCRAM answer without the server's signature
            return KafkaAuthenticationError(
                f"{where}: SASL {options.get('sasl_mechanism')} refused: the broker ended the "
                "exchange without proving the password (an unknown user or a wrong password)"
            )
        except (OSError, TimeoutError):
            continue  # unreachable: not a security problem
        try:  # connected; a broker that wants SASL closes on the first request before it
            await conn.send(MetadataRequest([]))
        except KafkaConnectionError:
            if not protocol.startswith("SASL_"):
                return KafkaSecurityError(
                    f"{where}: the broker closed the connection at the first request "
                    "(does its listener require SASL: SASL_SSL?)"
                )
        except (KafkaError, TimeoutError):
            pass  # answered, or slow: not a security problem
        finally:
            conn.close()
        return None
    return None


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


_ALERTS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate (mutual TLS)",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust the client certificate's CA",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker refused the client certificate as expired",
    "WRONG_VERSION_NUMBER": "the broker did not answer in TLS (a plaintext listener?)",
}


def _reason(error: ssl.SSLError) -> str:
    return _ALERTS.get(error.reason or "", str(error.reason or error).lower().replace("_", " "))


async def _tls_alert(host: str, port: int, context: ssl.SSLContext, timeout: float) -> str | None:
    """What the broker's TLS alert says, after a handshake that looked complete to the client (in
    TLS 1.3 a refused client certificate is reported after it), or None when it answers a request."""
    api_versions = struct.pack(
        ">hhih", 18, 0, 1, 0
    )  # ApiVersions v0, correlation id 1, no client id
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
            try:
                writer.write(struct.pack(">i", len(api_versions)) + api_versions)
                await writer.drain()
                answered = await reader.read(4)
            finally:
                writer.close()
    except ssl.SSLError as error:
        return _reason(error)
    except (OSError, TimeoutError):
        return None
    return None if answered else "the broker closed the TLS connection without an answer"
