"""The session's record keys, and records signed as a service would sign them.

Tests that stand in for a service on an internal topic (a workflow fact for the authentication
service, an OTP request for dispatch) sign what they publish with that service's key, as the
service would; a test that forges leaves the signature out or signs with a key of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from libs.devstack.dev_secrets import RECORD_WRITERS, SEALING_CONSUMERS
from libs.runtime.settings import ConnectionSettings
from libs.security.digests import Digests
from libs.security.invitations import InvitationIssuer, InvitationSettings
from libs.security.record_signatures import RecordSigner, generate_record_keys, signing_key_variable
from libs.security.sealing import (
    Opener,
    Sealer,
    generate_sealing_keys,
    private_keys_variable,
    public_keys_of,
)
from libs.security.secrets import generate_pepper
from libs.security.tokens import generate_key_pair
from services.identity.authenticators import generate_totp_key
from signgate_contracts import Message, encode
from signgate_contracts import workflow as wf
from signgate_contracts.envelope import Secret
from signgate_contracts.topics import BY_NAME
from tests.support.kafka import producer

TEST_RECORD_KEYS = generate_record_keys((*RECORD_WRITERS, "ledger"))
"""Every test service's signing key and the public keys of all, as environment variables."""
TEST_SEALING_KEYS = generate_sealing_keys(SEALING_CONSUMERS)
"""The sealing keys of the services values are sealed to, as environment variables."""
_invitations = generate_key_pair()
TEST_SHARED_KEYS = {
    "SIGNGATE_DIGEST_KEY": generate_pepper(),
    "SIGNGATE_OTP_PEPPER": generate_pepper(),
    "SIGNGATE_GRANT_PRIVATE_KEY": generate_key_pair().private_key,
    "SIGNGATE_INVITATION_PRIVATE_KEY": _invitations.private_key,
    "SIGNGATE_INVITATION_PUBLIC_KEY": _invitations.public_key,
    "SIGNGATE_IDENTITY_TOTP_KEY": generate_totp_key(),
}
"""The identifier digest key, the OTP pepper, the grant key and the invitation key pair, as
environment variables (services refuse to start without them: `libs.security.required_secrets`)."""


def signing_key_of(service: str) -> str:
    """The session's record signing key of ``service`` (for settings built without an env prefix)."""
    return TEST_RECORD_KEYS[signing_key_variable(f"SIGNGATE_{service.upper()}_")]


def signer_of(writer: str, keys: Mapping[str, str] = TEST_RECORD_KEYS) -> RecordSigner:
    """``writer``'s signer, from the session's keys or from ``keys`` (a stack started with its own)."""
    return RecordSigner(keys[signing_key_variable(f"SIGNGATE_{writer.upper()}_")])


def signed_headers(writer: str, topic: str, key: bytes | None, value: bytes,
                   keys: Mapping[str, str] = TEST_RECORD_KEYS) -> list[tuple[str, bytes]]:
    """aiokafka headers for ``value`` on the deployed ``topic``, signed by ``writer`` as it signs."""
    try:
        type_ = str(json.loads(value).get("type", ""))
    except (ValueError, AttributeError):
        type_ = ""
    headers = signer_of(writer, keys).headers(topic, key, value, {"type": type_, "content-type": "application/json"})
    return [(name, text.encode()) for name, text in headers.items()]


def as_writer(registry_topic: str, deployed_topic: str, key: bytes | None, value: bytes,
              keys: Mapping[str, str] = TEST_RECORD_KEYS) -> list[tuple[str, bytes]] | None:
    """The headers ``registry_topic``'s writer would give ``value`` (None for a command topic)."""
    writer = BY_NAME[registry_topic].writer
    return signed_headers(writer, deployed_topic, key, value, keys) if writer else None


def authentication_opener() -> Opener:
    """What the authentication service opens sealed values with, from the session's keys."""
    return Opener(json.loads(TEST_SEALING_KEYS[private_keys_variable("authentication")]))


def session_digests() -> Digests:
    return Digests(TEST_SHARED_KEYS["SIGNGATE_DIGEST_KEY"])


def invitation_for(package_id: str, order: int, version: int = 1, *, now: datetime | None = None) -> Secret:
    """The invitation workflow would issue to recipient ``order`` at authentication ``version``,
    signed with the session's invitation key (for tests standing in for the workflow service)."""
    issuer = InvitationIssuer(InvitationSettings(private_key=TEST_SHARED_KEYS["SIGNGATE_INVITATION_PRIVATE_KEY"]))
    token, _ = issuer.issue(package_id, order, version, now or datetime.now(UTC))
    return Secret(token)


def authentication_sealer() -> Sealer:
    """What workflow and identity seal values to the authentication service with, from the session's keys."""
    return Sealer("authentication", public_keys_of(TEST_SEALING_KEYS)["authentication"])


def sealed_policy(policy: wf.AuthenticationPolicy, package_id: str, order: int,
                  version: int = 1) -> wf.SealedAuthenticationPolicy:
    """``policy`` as workflow publishes it: the secret's hash and the destination sealed to the
    authentication service, bound to the recipient and ``version``."""
    where = policy.destination
    secret = {"secret_hash": policy.secret_hash, "destination": where.address if where else None}
    context = wf.sealed_policy_context(package_id, order, version)
    return wf.SealedAuthenticationPolicy(
        methods=list(policy.methods), secret_set=policy.secret_hash is not None,
        channel=where.channel if where else None, destination_masked=where.masked if where else None,
        sealed=authentication_sealer().seal(context, secret) if policy.secret_hash or where else None,
        retry_count=policy.retry_count, frequency=policy.frequency,
        identity_verification=policy.identity_verification, on_behalf_of=policy.on_behalf_of,
    )


def policy_updated(package_id: str, order: int, email: str, policy: wf.AuthenticationPolicy | None,
                   window: wf.AccessWindow | None = None, version: int = 1,
                   kind: type[wf.RecipientAuthenticationUpdatedV2 | wf.RecipientAuthenticationResetV2]
                   = wf.RecipientAuthenticationUpdatedV2) -> Message:
    """The fact workflow publishes when recipient ``order``'s policy becomes ``policy`` (``kind``:
    `RecipientAuthenticationResetV2` for the owner's reset)."""
    return kind(
        package_id=package_id, order=order, email_digest=session_digests().email(email),
        authentication_version=version, access_window=window,
        authentication=sealed_policy(policy, package_id, order, version) if policy else None,
    )


async def publish_as_writer(connections: ConnectionSettings, topic: str, key: str, *messages: Message) -> None:
    """Publish to the registry ``topic`` as its writer would: signed, if it is an internal topic."""
    writer = BY_NAME[topic].writer
    async with producer(connections.kafka_bootstrap) as client:
        for message in messages:
            deployed, value = connections.topic(topic), encode(message)
            headers = signed_headers(writer, deployed, key.encode(), value) if writer else None
            await client.send_and_wait(deployed, value, key=key.encode(), headers=headers)
