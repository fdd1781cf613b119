"""Composition root of the identity service, and its settings (``SIGNGATE_IDENTITY_*``).

The pepper (``SIGNGATE_SECRET_PEPPER``), the token keys (``SIGNGATE_TOKEN_PRIVATE_KEY``,
``SIGNGATE_TOKEN_PUBLIC_KEY``), the identifier digest key (``SIGNGATE_DIGEST_KEY``) and the
sealing public keys (``SIGNGATE_SEALING_PUBLIC_KEYS``) are read without the service prefix:
other services share them.
"""

from __future__ import annotations

from pathlib import Path

from faststream.asgi import AsgiFastStream

from libs.runtime.service import ServiceDefinition, build_app
from libs.security.required_secrets import require
from services.identity import use_cases
from services.identity.settings import IdentitySettings
from services.identity.views import PublishingKeys, rejection_key
from signgate_contracts.identity import (
    AuthenticateUser,
    ChangePassword,
    DisableUser,
    EnableUser,
    ExpirePassword,
    RegisterUser,
    SetPassword,
    UnlockUser,
    UpdateUser,
    UpdateUserProfile,
)
from signgate_contracts.topics import IDENTITY_COMMANDS

__all__ = ["DEFINITION", "IdentitySettings", "create_app"]


DEFINITION = ServiceDefinition(
    dependencies=lambda resources: resources,  # TRANSITIONAL: the resources as they are
    settings=IdentitySettings,
    name="identity",
    schema="identity",
    uses_redis=True,
    consumes=(IDENTITY_COMMANDS,),
    handlers={
        RegisterUser: use_cases.register_user,
        UpdateUser: use_cases.update_user,
        UpdateUserProfile: use_cases.update_user_profile,
        SetPassword: use_cases.set_password,
        ChangePassword: use_cases.change_password,
        DisableUser: use_cases.disable_user,
        EnableUser: use_cases.enable_user,
        UnlockUser: use_cases.unlock_user,
        ExpirePassword: use_cases.expire_password,
        AuthenticateUser: use_cases.authenticate_user,
    },
    folder=Path(__file__).parent,
    rejection_key=rejection_key,  # a rejection is keyed by the digest of the name given, never the name
)


def create_app(settings: IdentitySettings | None = None) -> AsgiFastStream:
    settings = settings or IdentitySettings()
    require(
        "identity",
        {
            "SIGNGATE_SECRET_PEPPER": settings.secrets.pepper,
            "SIGNGATE_TOKEN_PRIVATE_KEY": settings.tokens.private_key,
            "SIGNGATE_DIGEST_KEY": settings.digests.key,
            "SIGNGATE_SEALING_PUBLIC_KEYS": settings.sealing.public_keys.get("authentication"),
        },
    )
    PublishingKeys.build(settings)  # and checks the keys it was given are keys
    return build_app(DEFINITION, settings)
