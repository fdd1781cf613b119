"""Every service's definition, for the provisioning step and the tests."""

from __future__ import annotations

from libs.runtime.service import ServiceDefinition
from services.authentication.app import DEFINITION as AUTHENTICATION
from services.identity.app import DEFINITION as IDENTITY
from services.otp_dispatch.app import DEFINITION as OTP_DISPATCH
from services.workflow.app import DEFINITION as WORKFLOW

SERVICES: tuple[ServiceDefinition, ...] = (IDENTITY, WORKFLOW, AUTHENTICATION, OTP_DISPATCH)
