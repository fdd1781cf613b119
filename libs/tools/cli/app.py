"""The ``signgate`` command: send commands, watch topics, and read a running stack's state.

Exit codes and the one-line errors are ``errors.ExitCode`` and ``errors.classify``; the root group
(``Commands``) applies them to every command, and reads the root's options (``--json``,
``--timeout``, ...) wherever they stand on the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypedDict, TypeVar

import typer
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr, ValidationError
from rich.table import Table
from rich.text import Text
from typer import _click as click  # typer 0.2x runs on its own copy of click
from typer.core import TyperGroup

from libs.devstack.stack import DATA_DIR
from libs.runtime.kafka_security import client_options, signgate_client_options, start_client
from libs.tools.cli import render
from libs.tools.cli.acls import acls
from libs.tools.cli.errors import (
    CliError,
    ExitCode,
    classify,
    library_logs,
    refused,
    report,
    validation_why,
)
from libs.tools.cli.stack import (
    NoStack,
    find_bootstrap,
    mint_operator_token,
    reply_topic,
    save_invitations,
    save_token,
    saved_invitation,
    saved_token,
)
from services.otp_dispatch.providers.sandbox import read_outbox
from signgate_client import Outcome, SignGateClient, command_types
from signgate_client.stream import assign, correlation_of, partitions_of
from signgate_contracts import authentication as auth
from signgate_contracts import identity as idn
from signgate_contracts import workflow as wf
from signgate_contracts.codec import decode
from signgate_contracts.envelope import Command, Message
from signgate_contracts.rejection import CommandRejected
from signgate_contracts.topics import BY_NAME, DLQ_PARTITIONS, DLQ_RETENTION, TOPICS

T = TypeVar("T")


def hoisted(args: list[str], options: dict[str, bool]) -> list[str]:
    """``args`` with the root's ``options`` (name -> takes a value) moved to the front wherever
    they stand, so ``signgate send share P --json`` reads as ``signgate --json send share P``;
    nothing after ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    at = 0
    while at < len(args):
        arg = args[at]
        if arg == "--":
            rest += args[at:]
            break
        name = arg.split("=", 1)[0]
        if name not in options:
            rest.append(arg)
        elif options[name] and "=" not in arg:
            front += args[at : at + 2]
            at += 1
        else:
            front.append(arg)
        at += 1
    return front + rest


class Commands(TyperGroup):
    """The root group: its options anywhere on the line, and every failure ended by one handler
    with one stderr line and the ``ExitCode`` of its kind."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options = {
            name: not getattr(option, "is_flag", False) and not getattr(option, "count", False)
            for option in self.params
            if option.param_type_name == "option"
            for name in (*option.opts, *option.secondary_opts)
        }
        return super().parse_args(ctx, hoisted(args, options))

    def invoke(self, ctx: click.Context) -> Any:
        as_json = bool(ctx.params.get("as_json"))
        verbose = bool(ctx.params.get("verbose"))
        with library_logs(verbose=verbose) as logged:
            try:
                return super().invoke(ctx)
            except (typer.Exit, typer.Abort, click.ClickException):
                raise  # typer's own: exits, usage errors (2), an aborted prompt
            except BrokenPipeError:  # stdout's reader went away (`| head`): end as SIGPIPE would
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(int(ExitCode.PIPE_CLOSED)) from None
            except Exception as error:
                failure = classify(error, logged, broker=_broker(ctx.params.get("bootstrap")))
                if failure is None:
                    failure = CliError(
                        ExitCode.INTERNAL,
                        "internal error",
                        f"{type(error).__name__}: {error}"
                        + ("" if verbose else " (--verbose shows the traceback)"),
                    )
                    if verbose:
                        traceback.print_exc()
                report(failure, as_json=as_json)
                raise typer.Exit(int(failure.code)) from None


def _broker(bootstrap: str | None) -> str | None:
    with contextlib.suppress(NoStack, ValueError, OSError, KeyError):
        return find_bootstrap(bootstrap)
    return None


# No rich markup in help: `ORDER:EMAIL:NAME` stays text (rich made :EMAIL: an emoji).
app = typer.Typer(
    name="signgate",
    help="Talk to a running signgate: send commands, watch topics, read state.",
    no_args_is_help=True,
    add_completion=False,
    epilog="Options above may also follow the subcommand. Exit codes: "
    + ", ".join(f"{code.value} {code.name.lower().replace('_', ' ')}" for code in ExitCode)
    + ".",
    cls=Commands,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
send_app = typer.Typer(
    help="Send a command and print the events it caused (exit 1 when refused).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(send_app, name="send")
app.command("acls")(acls)

OUTBOX = DATA_DIR / "sandbox-outbox.jsonl"


@dataclass
class Settings:
    bootstrap: str | None
    topic_prefix: str
    timeout: float
    as_json: bool
    verbose: bool = False

    def client(self) -> SignGateClient:
        return SignGateClient(
            find_bootstrap(self.bootstrap),
            reply_topic(self.topic_prefix),
            topic_prefix=self.topic_prefix,
            **signgate_client_options(),
        )


@app.callback()
def main(
    ctx: typer.Context,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            help="Kafka bootstrap; default: SIGNGATE_KAFKA_BOOTSTRAP, "
            "else the running `make run` stack."
        ),
    ] = None,
    topic_prefix: Annotated[
        str, typer.Option(envvar="SIGNGATE_TOPIC_PREFIX", help="Deployment topic prefix.")
    ] = "",
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker, and then for an outcome.")
    ] = 30.0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print results as JSON on stdout (secrets masked), an error as one JSON "
            "object on stderr.",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", help="Show library log lines on stderr, and a defect's traceback."
        ),
    ] = False,
) -> None:
    """The options every command shares (they may also follow the subcommand)."""
    ctx.obj = Settings(bootstrap, topic_prefix, timeout, as_json, verbose)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; what it raises is classified by ``Commands.invoke``."""
    return asyncio.run(work)


async def _started(start: Awaitable[None], settings: Settings) -> None:
    """Await a client's start within ``--timeout``: a broker that does not answer is unreachable."""
    try:
        async with asyncio.timeout(settings.timeout):
            await start
    except TimeoutError:
        raise CliError(
            ExitCode.UNREACHABLE,
            f"cannot reach the broker at {_broker(settings.bootstrap) or '?'}",
            f"no answer within {settings.timeout:g} s",
        ) from None


@contextlib.asynccontextmanager
async def _connected(client: SignGateClient, settings: Settings) -> AsyncIterator[SignGateClient]:
    """``client`` started within ``--timeout``, and closed after."""
    try:
        await _started(client.start(), settings)
    except BaseException:
        with contextlib.suppress(Exception):  # the start's failure is the one to report
            await client.close()
        raise
    try:
        yield client
    finally:
        await client.close()


def _note(settings: Settings, text: str) -> None:
    """A remark for the person at the terminal: on stdout, or on stderr when stdout is JSON."""
    if settings.as_json:
        print(text, file=sys.stderr)
    else:
        render.console().print(Text(text, style="dim"))


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=_json_value, indent=2))


def _json_value(value: Any) -> str:
    """Times as ISO 8601; ids, enums and other values as their text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _document(message: Message) -> dict[str, Any]:
    """A message as `--json` prints it: type, correlation id, its fields with secrets masked."""
    return {
        "type": message.type,
        "correlation_id": str(message.correlation_id),
        **render.fields(message),
    }


# -- send --


def _token(owner: bool = True) -> str:
    """The owner's token: SIGNGATE_ACCESS_TOKEN, else the one `send authenticate` saved."""
    token = os.environ.get("SIGNGATE_ACCESS_TOKEN") or saved_token()
    if token is None and owner:
        raise CliError(
            ExitCode.USAGE,
            "no token",
            "run `signgate send authenticate USER` first, or set SIGNGATE_ACCESS_TOKEN",
        )
    return token or ""


def _send(
    ctx: typer.Context,
    command: Command,
    after: Callable[[Outcome], str | None] | None = None,
    revealed: Callable[[Message], dict[str, Any]] | None = None,
) -> Outcome:
    """Send ``command`` and print what answered; ``after`` adds a remark, ``revealed`` the fields
    `--json` prints in clear (a secret the caller is shown once, as the remark shows it)."""
    settings: Settings = ctx.obj
    out = render.console()

    async def go() -> Outcome:
        async with _connected(settings.client(), settings) as client:
            if not settings.as_json:
                show(command)
            return await client.send(command, timeout=settings.timeout)

    def show(message: Message) -> None:
        out.print(
            render.message_line(message, width=max(out.width - 50, 60)),
            overflow="ellipsis",
            no_wrap=True,
        )

    outcome = _run(go())
    messages = [
        m for m in (outcome.event, outcome.reply, *outcome.effects.values()) if m is not None
    ]
    if settings.as_json:
        _print_json([{**_document(m), **(revealed(m) if revealed else {})} for m in messages])
    else:
        for message in messages:
            show(message)
    note = after(outcome) if after is not None else None
    if note:
        _note(settings, note)
    if outcome.rejection is not None:
        raise refused(outcome.rejection)
    return outcome


@send_app.command("json")
def send_json(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="The command's JSON itself, a file holding it, or - for stdin.")
    ] = "-",
) -> None:
    """Any command as JSON: {"type": "workflow.share_workflow", "package_id": …, "access_token": …}.

    The envelope (event_id, correlation_id, occurred_at) is filled in; the record key is the
    command's natural key. A field the command does not have is refused (exit 3), as is
    anything that is not valid JSON.
    """
    _send(ctx, command_of(_read_source(source)))


def _read_source(source: str) -> str:
    """The text `send json` was given: stdin for -, the argument when it is JSON, else a file."""
    if source == "-":
        return sys.stdin.read()
    if source.lstrip().startswith(("{", "[")):
        return source
    path = Path(source)
    if path.is_file():
        return path.read_text()
    shown = source if len(source) <= 40 else source[:39] + "…"
    raise CliError(ExitCode.BAD_INPUT, "invalid JSON", f"{shown!r} is neither JSON nor a file")


def command_of(text: str) -> Command:
    """A command from its JSON text, refusing what the command would drop: a field neither it nor
    its envelope has (a misspelt optional field would otherwise pass unnoticed)."""
    document = json.loads(text)
    kind = document.get("type") if isinstance(document, dict) else None
    model = command_types().get(kind) if isinstance(kind, str) else None
    if model is None:
        raise CliError(
            ExitCode.BAD_INPUT,
            "not a signgate command",
            f"no signgate command has type {kind!r}"
            if isinstance(document, dict)
            else "a command is a JSON object with a type",
        )
    known = {
        name
        for field_name, field in model.model_fields.items()
        for name in (field_name, field.alias, field.validation_alias)
        if isinstance(name, str)
    }
    unknown = sorted(set(document) - known)
    try:
        command = model.model_validate(document)
    except ValidationError as error:
        raise CliError(
            ExitCode.BAD_INPUT,
            f"invalid {kind}",
            "; ".join([*(f"{name}: no such field" for name in unknown), validation_why(error)]),
        ) from None
    if unknown:
        raise CliError(
            ExitCode.BAD_INPUT, f"invalid {kind}", "; ".join(f"{n}: no such field" for n in unknown)
        )
    return command


@send_app.command("authenticate")
def send_authenticate(
    ctx: typer.Context,
    user: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    code: Annotated[
        str | None,
        typer.Option(
            help="The authenticator app's current code, or a recovery code (for a user with a "
            "second factor)."
        ),
    ] = None,
) -> None:
    """Authenticate an API user; the token is kept (0600, .signgate/cli-token) for owner commands.
    Ends with 7 when the user's second factor is required: run it again with --code."""

    def keep(outcome: Outcome) -> str | None:
        if isinstance(outcome.reply, idn.AuthenticationSucceeded):
            save_token(outcome.reply.access_token.get_secret_value())
            return "token kept for owner commands"
        return None

    outcome = _send(
        ctx,
        idn.AuthenticateUser(
            user_name=user,
            password=SecretStr(password),
            one_time_code=SecretStr(code) if code else None,
        ),
        keep,
    )
    if isinstance(outcome.reply, idn.AuthenticationFailed) and any(
        r.code == "second_factor_required" for r in outcome.reply.reasons
    ):
        raise CliError(
            ExitCode.SECOND_FACTOR_REQUIRED,
            "second factor required",
            "run it again with --code and the authenticator app's code (or a recovery code)",
        )


@send_app.command("enrol-authenticator")
def send_enrol_authenticator(ctx: typer.Context, user: str) -> None:
    """Start enrolling an authenticator app for USER, with USER's own kept token: prints the
    otpauth:// URI (paste it into a QR generator, or type the secret into the app), once; then run
    `confirm-authenticator` with the app's first code."""

    def show_secret(outcome: Outcome) -> str | None:
        if isinstance(outcome.reply, idn.AuthenticatorEnrolment):
            reply = outcome.reply
            return (
                "authenticator app (shown once):\n"
                f"  otpauth URI: {reply.otpauth_uri.get_secret_value()}\n"
                f"  secret:      {reply.secret.get_secret_value()}\n"
                f"  then: signgate send confirm-authenticator {user} --code CODE"
            )
        return None

    _send(
        ctx, idn.EnrolAuthenticator(user_name=user, access_token=SecretStr(_token())), show_secret
    )


def _show_recovery_codes(outcome: Outcome) -> str | None:
    if isinstance(outcome.reply, idn.RecoveryCodesIssued):
        codes = "\n".join(f"  {c.get_secret_value()}" for c in outcome.reply.recovery_codes)
        return f"recovery codes (shown once, keep them; each works once):\n{codes}"
    return None


@send_app.command("confirm-authenticator")
def send_confirm_authenticator(
    ctx: typer.Context,
    user: str,
    code: Annotated[str, typer.Option(prompt=True, help="The app's current code.")],
) -> None:
    """Confirm USER's pending authenticator app with its first code, with USER's kept token; prints
    the recovery codes, once."""
    _send(
        ctx,
        idn.ConfirmAuthenticator(
            user_name=user, one_time_code=SecretStr(code), access_token=SecretStr(_token())
        ),
        _show_recovery_codes,
    )


@send_app.command("disable-authenticator")
def send_disable_authenticator(
    ctx: typer.Context,
    user: str,
    code: Annotated[
        str | None,
        typer.Option(help="USER's current code or a recovery code; an administrator needs none."),
    ] = None,
) -> None:
    """Remove USER's authenticator app, with the kept token (USER's own, with --code; or an
    administrator's)."""
    _send(
        ctx,
        idn.DisableAuthenticator(
            user_name=user,
            one_time_code=SecretStr(code) if code else None,
            access_token=SecretStr(_token()),
        ),
    )


@send_app.command("regenerate-recovery-codes")
def send_regenerate_recovery_codes(
    ctx: typer.Context,
    user: str,
    code: Annotated[
        str, typer.Option(prompt=True, help="The app's current code or a recovery code.")
    ],
) -> None:
    """A new set of recovery codes for USER, with USER's kept token and a code; the old set stops
    working. Prints the new codes, once."""
    _send(
        ctx,
        idn.RegenerateRecoveryCodes(
            user_name=user, one_time_code=SecretStr(code), access_token=SecretStr(_token())
        ),
        _show_recovery_codes,
    )


@send_app.command("register-user")
def send_register_user(
    ctx: typer.Context,
    user: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    first_name: str = "",
    last_name: str = "",
    mobile: str | None = None,
    account: Annotated[str, typer.Option(help="The user's primary account's name.")] = "Default",
) -> None:
    """Register an API user with an operator token minted from the stack's signing key."""
    _send(
        ctx,
        idn.RegisterUser(
            user_name=user,
            first_name=first_name,
            last_name=last_name,
            mobile_number=mobile,
            password=SecretStr(password),
            accounts=[
                idn.AccountMembership(
                    name=account, context_identifier=uuid.uuid4(), is_primary=True
                )
            ],
            access_token=SecretStr(mint_operator_token("cli")),
        ),
    )


@send_app.command("issue-api-key")
def send_issue_api_key(
    ctx: typer.Context,
    user: str,
    name: Annotated[str, typer.Option(help="A label to tell the user's keys apart.")],
    account: Annotated[
        uuid.UUID | None,
        typer.Option(help="The account's context identifier; the primary by default."),
    ] = None,
) -> None:
    """Issue an API key of USER with the kept token (the user's own, or an administrator's); the
    key is printed once (with --json, as the api_key of identity.issued_api_key), and signgate
    keeps only its digest."""
    as_json = ctx.obj.as_json

    def show_key(outcome: Outcome) -> str | None:
        if isinstance(outcome.reply, idn.IssuedApiKey) and not as_json:
            return f"API key (shown once, keep it): {outcome.reply.api_key.get_secret_value()}"
        return None

    def key_in_clear(message: Message) -> dict[str, Any]:
        if isinstance(message, idn.IssuedApiKey):
            return {"api_key": message.api_key.get_secret_value()}
        return {}

    _send(
        ctx,
        idn.IssueApiKey(
            user_name=user, name=name, account=account, access_token=SecretStr(_token())
        ),
        show_key,
        key_in_clear,
    )


@send_app.command("list-api-keys")
def send_list_api_keys(ctx: typer.Context, user: str, include_revoked: bool = False) -> None:
    """List USER's API keys (ids, names, accounts, created, last used), with the kept token."""

    def table(outcome: Outcome) -> str | None:
        if isinstance(outcome.reply, idn.ApiKeysListed):
            return "\n".join(_api_key_line(k) for k in outcome.reply.keys) or "no API keys"
        return None

    _send(
        ctx,
        idn.ListApiKeys(
            user_name=user, include_revoked=include_revoked, access_token=SecretStr(_token())
        ),
        table,
    )


def _api_key_line(key: idn.ApiKeySummary) -> str:
    used = f"last used {key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never used"
    revoked = f", revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
    return f"{key.key_id}  {key.name!r}  account {key.account}  created {key.created_at:%Y-%m-%d %H:%M}, {used}{revoked}"


@send_app.command("revoke-api-key")
def send_revoke_api_key(ctx: typer.Context, user: str, key_id: uuid.UUID) -> None:
    """Revoke one of USER's API keys, with the kept token: it can no longer be exchanged."""
    _send(ctx, idn.RevokeApiKey(user_name=user, key_id=key_id, access_token=SecretStr(_token())))


def _recipient(spec: str) -> wf.RecipientSpec:
    order, email, name, *mobile = spec.split(":", 3)
    return wf.RecipientSpec(
        order=int(order), email=email, name=name, mobile_number=mobile[0] if mobile else None
    )


@send_app.command("register-package")
def send_register_package(
    ctx: typer.Context,
    package: str,
    recipient: Annotated[
        list[str], typer.Option(help="ORDER:EMAIL:NAME[:MOBILE], once per recipient.")
    ],
    name: str = "Package",
    document: Annotated[list[str] | None, typer.Option(help="ID:NAME")] = None,
) -> None:
    """Register a package in draft, owned by the authenticated user."""
    documents = [
        wf.DocumentSpec(document_id=d.split(":", 1)[0], name=d.split(":", 1)[-1])
        for d in document or ["doc-1:document.pdf"]
    ]
    _send(
        ctx,
        wf.RegisterPackage(
            package_id=package,
            name=name,
            documents=documents,
            recipients=[_recipient(r) for r in recipient],
            access_token=SecretStr(_token()),
        ),
    )


@send_app.command("set-sms-otp")
def send_set_sms_otp(ctx: typer.Context, package: str, order: int, mobile: str) -> None:
    """SigningHub: SMS OTP (password off) for the recipient at ORDER, while the package is a draft."""
    body = {
        "apply_to_all": False,
        "authentication": {
            "enabled": True,
            "password": {"enabled": False},
            "sms_otp": {"enabled": True, "mobile_number": mobile},
        },
    }
    # The body as SigningHub sends it: validated as the service will validate it (aliases, text).
    command = wf.UpdateRecipientAuthentication.model_validate(
        {"package_id": package, "order": order, "body": body, "access_token": _token()}
    )
    _send(ctx, command)


@send_app.command("set-access-code")
def send_set_access_code(
    ctx: typer.Context,
    package: str,
    email: str,
    code: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    order: int | None = None,
) -> None:
    """BoldSign: the signer with EMAIL opens with an access code."""
    body = {
        "emailId": email,
        "order": order,
        "authenticationType": "AccessCode",
        "accessCode": code,
    }
    command = wf.AddAuthentication.model_validate(
        {"package_id": package, "body": body, "access_token": _token()}
    )
    _send(ctx, command)


@send_app.command("set-totp")
def send_set_totp(
    ctx: typer.Context,
    package: str,
    order: int,
    source: Annotated[
        str,
        typer.Option(
            help="provisioned: a new secret for the recipient's app (its otpauth URI printed); "
            "user_authenticator: the app of the API user named as the recipient's signer."
        ),
    ] = "provisioned",
    with_password: Annotated[
        str | None,
        typer.Option(help="Also require this password (SigningHub's password and TOTP together)."),
    ] = None,
) -> None:
    """The recipient at ORDER opens with codes from an authenticator app (TOTP), while the package
    is a draft; a provisioned secret's otpauth URI is printed, for the recipient's QR code."""
    body = {
        "apply_to_all": False,
        "authentication": {
            "enabled": True,
            "password": {"enabled": with_password is not None, "user_password": with_password},
            "totp": {"enabled": True, "source": source},
        },
    }
    command = wf.UpdateRecipientAuthentication.model_validate(
        {"package_id": package, "order": order, "body": body, "access_token": _token()}
    )
    _send(ctx, command, _provisioning_uri)


def _provisioning_uri(outcome: Outcome) -> str | None:
    """The otpauth URI of a secret just provisioned, for the person at the terminal to show the
    recipient (as a QR code): it holds the secret, and is shown nowhere else."""
    reply = outcome.reply
    if not isinstance(reply, wf.RecipientTotpProvisioned):
        return None
    return (
        f"authenticator app of order {reply.order}: add this otpauth URI (as a QR code, or its "
        f"secret by hand): {reply.otpauth_uri.get_secret_value()}"
    )


def _keep_invitations(outcome: Outcome) -> str | None:
    """Keep the invitations a share or an invite answered with (0600), for recipient commands;
    what was kept, for the person at the terminal."""
    reply = outcome.reply
    if isinstance(reply, wf.RecipientInvitationsIssued):
        kept = {i.order: i.invitation.get_secret_value() for i in reply.invitations}
    elif isinstance(reply, wf.RecipientInvitationIssued):
        kept = {reply.order: reply.invitation.get_secret_value()}
    else:
        return None
    save_invitations(reply.package_id, kept)
    return (
        f"invitations of order {', '.join(map(str, sorted(kept)))} kept for "
        "recipient commands (what their signing links carry)"
    )


@send_app.command("share")
def send_share(ctx: typer.Context, package: str) -> None:
    """Send the package to its recipients (draft -> in progress); keeps their invitations."""
    _send(
        ctx,
        wf.ShareWorkflow(package_id=package, access_token=SecretStr(_token())),
        _keep_invitations,
    )


@send_app.command("invite")
def send_invite(ctx: typer.Context, package: str, order: int) -> None:
    """The owner asks for a new invitation for one recipient (a lost link, or after a reset)."""
    _send(
        ctx,
        wf.IssueRecipientInvitation(
            package_id=package, order=order, access_token=SecretStr(_token())
        ),
        _keep_invitations,
    )


class Credential(TypedDict, total=False):
    """What a recipient command proves itself with (the fields of ``_credential``)."""

    invitation: SecretStr
    access_token: SecretStr


InvitationOption = Annotated[
    str | None,
    typer.Option(
        envvar="SIGNGATE_INVITATION",
        help="The recipient's invitation (from their signing link); "
        "default: the one `send share` kept, else the owner's token.",
    ),
]


def _credential(
    package: str, order: int, invitation: str | None, *, required: bool = True
) -> Credential:
    """What a recipient command proves itself with: the recipient's invitation, else the owner's
    token (with neither, exit 2 — or, not ``required``, nothing, and the service's 401)."""
    invitation = invitation or saved_invitation(package, order)
    if invitation:
        return {"invitation": SecretStr(invitation)}
    token = _token(owner=required)
    return {"access_token": SecretStr(token)} if token else {}


@send_app.command("open")
def send_open(
    ctx: typer.Context,
    package: str,
    order: int,
    code: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="Password or access code.")
    ],
    invitation: InvitationOption = None,
) -> None:
    """A recipient opens the document with a password or access code."""
    _send(
        ctx,
        auth.OpenDocumentWithPassword(
            package_id=package,
            order=order,
            password=SecretStr(code),
            **_credential(package, order, invitation),
        ),
    )


class OtpChannel(StrEnum):
    sms = "sms"
    voice = "voice"
    email = "email"


@send_app.command("request-otp")
def send_request_otp(
    ctx: typer.Context,
    package: str,
    order: int,
    invitation: InvitationOption = None,
    channel: Annotated[
        OtpChannel | None,
        typer.Option(
            help="sms or voice (a mobile number allows both), or email; the policy's own if left out."
        ),
    ] = None,
) -> None:
    """A recipient asks for a one-time password (see `signgate outbox` on a development stack)."""
    _send(
        ctx,
        auth.RequestDocumentOtp(
            package_id=package,
            order=order,
            channel=channel.value if channel else None,
            **_credential(package, order, invitation),
        ),
    )


@send_app.command("verify-otp")
def send_verify_otp(
    ctx: typer.Context,
    package: str,
    order: int,
    code: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    invitation: InvitationOption = None,
) -> None:
    """A recipient opens the document with the one-time password they received."""
    _send(
        ctx,
        auth.VerifyDocumentOtp(
            package_id=package,
            order=order,
            code=SecretStr(code),
            **_credential(package, order, invitation),
        ),
    )


@send_app.command("verify-totp")
def send_verify_totp(
    ctx: typer.Context,
    package: str,
    order: int,
    code: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="The code the app shows now.")
    ],
    invitation: InvitationOption = None,
) -> None:
    """A recipient opens the document with a code from their authenticator app (each code once)."""
    _send(
        ctx,
        auth.VerifyDocumentTotp(
            package_id=package,
            order=order,
            code=SecretStr(code),
            **_credential(package, order, invitation),
        ),
    )


@send_app.command("reset")
def send_reset(
    ctx: typer.Context,
    package: str,
    order: int,
    new_totp_secret: Annotated[
        bool,
        typer.Option(help="Also provision a new TOTP secret (a lost phone); its URI is printed."),
    ] = False,
) -> None:
    """The owner unlocks one recipient: failures and lockout cleared, nobody else touched."""
    _send(
        ctx,
        wf.ResetRecipientAuthentication(
            package_id=package,
            order=order,
            access_token=SecretStr(_token()),
            totp_source="provisioned" if new_totp_secret else None,
        ),
        _provisioning_uri,
    )


# -- reading state --


@app.command()
def status(
    ctx: typer.Context, package: str, order: int, invitation: InvitationOption = None
) -> None:
    """A recipient's authentication status, and the workflow's settings for them (with a token)."""
    settings: Settings = ctx.obj
    token = _token(owner=False)
    credential = _credential(package, order, invitation, required=False)

    async def go() -> list[Outcome]:
        async with _connected(settings.client(), settings) as client:
            queries: list[Command] = [
                auth.GetRecipientAuthenticationStatus(package_id=package, order=order, **credential)
            ]
            if token:
                queries.append(
                    wf.GetRecipientAuthentication(
                        package_id=package, order=order, access_token=SecretStr(token)
                    )
                )
            return list(
                await asyncio.gather(*(client.send(q, timeout=settings.timeout) for q in queries))
            )

    outcomes = _run(go())
    results = [o.result for o in outcomes if o.result is not None]
    if settings.as_json:
        _print_json([_document(result) for result in results])
    out = render.console()
    for result in [] if settings.as_json else results:
        if isinstance(result, CommandRejected):
            out.print(render.message_line(result))
            continue
        table = Table(title=result.type, title_justify="left", show_header=False)
        for key, value in render.fields(result).items():
            table.add_row(key, Text(render.compact(value)))
        out.print(table)
    if not token:
        _note(
            settings,
            "the workflow's settings need the owner's token: `signgate send authenticate USER`",
        )
    rejection = next((o.rejection for o in outcomes if o.rejection is not None), None)
    if rejection is not None:
        raise refused(rejection)


@app.command()
def history(ctx: typer.Context, package: str) -> None:
    """The package's history as a table (needs the owner's token)."""
    settings: Settings = ctx.obj
    token = _token()

    async def go() -> tuple[list[wf.HistoryEntry], Outcome | None]:
        entries: list[wf.HistoryEntry] = []
        after = 0
        async with _connected(settings.client(), settings) as client:
            while True:
                outcome = await client.send(
                    wf.GetWorkflowHistory(
                        package_id=package, after_sequence=after, access_token=SecretStr(token)
                    ),
                    timeout=settings.timeout,
                )
                if not isinstance(outcome.reply, wf.WorkflowHistoryListed):
                    return entries, outcome
                entries += outcome.reply.entries
                if outcome.reply.next_after is None:
                    return entries, None
                after = outcome.reply.next_after

    entries, unlisted = _run(go())
    if unlisted is not None and unlisted.result is not None:
        if settings.as_json:
            _print_json([_document(unlisted.result)])
        else:
            render.console().print(render.message_line(unlisted.result))
        if unlisted.rejection is not None:
            raise refused(unlisted.rejection)
        raise CliError(ExitCode.INTERNAL, "history", f"unexpected answer {unlisted.result.type}")
    if settings.as_json:
        _print_json(
            [
                {
                    "occurred_at": e.occurred_at,
                    "correlation_id": e.correlation_id,
                    **render.fields(e),
                }
                for e in entries
            ]
        )
    else:
        render.console().print(render.history_table(package, entries))


@app.command()
def outbox(
    ctx: typer.Context,
    last: Annotated[int, typer.Option(help="How many deliveries, newest last.")] = 10,
    path: Annotated[Path, typer.Option(help="The sandbox outbox file.")] = OUTBOX,
) -> None:
    """The OTP sandbox's deliveries, codes included (development stacks only)."""
    deliveries = read_outbox(path)[-last:] if last > 0 else []
    if ctx.obj.as_json:
        _print_json(deliveries)
        return
    table = Table(title=f"sandbox outbox {path}", title_justify="left")
    for column in ("delivered (UTC)", "channel", "destination", "code", "purpose", "challenge"):
        table.add_column(column)
    for d in deliveries:
        table.add_row(
            d["delivered_at"][11:23],
            d["channel"],
            d["destination"],
            d["code"],
            d.get("purpose") or "",
            d["challenge_id"][:8],
        )
    render.console().print(table)


class TopicRow(TypedDict):
    """A registry topic as `topics` shows it, and what the broker has of it."""

    topic: str
    kind: str
    key: str
    partitions: int
    retention_seconds: int
    on_broker: int | None


@app.command()
def topics(ctx: typer.Context) -> None:
    """The topic registry, and what the broker has: partitions, retention, other topics."""
    settings: Settings = ctx.obj

    async def go() -> dict[str, int]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=find_bootstrap(settings.bootstrap),
            client_id="signgate-cli",
            **client_options(),
        )
        await _started(start_client(admin, bootstrap=find_bootstrap(settings.bootstrap)), settings)
        try:
            names = await admin.list_topics()
            counts: dict[str, int] = {}
            for partition in await partitions_of(admin, names):
                counts[partition.topic] = counts.get(partition.topic, 0) + 1
            return counts
        finally:
            await admin.close()

    on_broker = _run(go())
    rows = [
        TopicRow(
            topic=name,
            kind="dead letters" if retention is None else topic.kind.value,
            key=topic.key,
            partitions=partitions,
            retention_seconds=int((retention or DLQ_RETENTION).total_seconds()),
            on_broker=on_broker.get(settings.topic_prefix + name),
        )
        for topic in TOPICS
        for name, partitions, retention in (
            (topic.name, topic.partitions, topic.retention),
            (topic.dlq, DLQ_PARTITIONS, None),
        )
    ]
    known = {settings.topic_prefix + row["topic"] for row in rows}
    others = {name: on_broker[name] for name in sorted(set(on_broker) - known)}
    if settings.as_json:
        _print_json({"topics": rows, "other_topics": others})
        return
    table = Table(title="signgate topics", title_justify="left")
    for column in ("topic", "kind", "key", "partitions", "retention", "on the broker"):
        table.add_column(column)
    for row in rows:
        have = row["on_broker"]
        table.add_row(
            row["topic"],
            row["kind"],
            row["key"],
            str(row["partitions"]),
            _duration(timedelta(seconds=row["retention_seconds"])),
            Text(f"{have} partitions", style="green") if have else Text("missing", style="red"),
        )
    out = render.console()
    out.print(table)
    if others:
        out.print(
            "other topics on the broker: " + ", ".join(f"{n} ({c})" for n, c in others.items())
        )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


# -- tail --


@app.command()
def tail(
    ctx: typer.Context,
    topic: Annotated[
        list[str] | None,
        typer.Argument(help="Registry topic names; default: all, with dead letters."),
    ] = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record kept.")] = False,
    limit: Annotated[int, typer.Option(help="Stop after this many records (0: never).")] = 0,
    seconds: Annotated[float, typer.Option(help="Stop after this long (0: never).")] = 0,
) -> None:
    """Print records as they arrive, one line each, grouped by correlation id; secrets masked.

    With --json, one JSON object a line (JSON Lines), in time order.
    """
    settings: Settings = ctx.obj
    names = topic or [n for t in TOPICS for n in (t.name, t.dlq)]
    printer = TailPrinter(render.console(), settings.topic_prefix, json_lines=settings.as_json)

    async def go() -> None:
        bootstrap = find_bootstrap(settings.bootstrap)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="signgate-tail", **client_options()
        )
        await _started(start_client(admin, bootstrap=bootstrap), settings)
        try:
            partitions = await partitions_of(admin, [settings.topic_prefix + n for n in names])
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="signgate-tail",
            enable_auto_commit=False,
            **client_options(),
        )
        await _started(start_client(consumer, bootstrap=bootstrap), settings)
        try:
            await assign(consumer, partitions, from_beginning=from_beginning)
            with contextlib.suppress(TimeoutError):  # --seconds is up
                async with asyncio.timeout(seconds or None):
                    while not (limit and printer.count >= limit):
                        batches = await consumer.getmany(timeout_ms=200)
                        records = [r for batch in batches.values() for r in batch]
                        printer.show(
                            [
                                TailRecord(r.topic, r.value or b"", correlation_of(r), r.timestamp)
                                for r in records
                            ][: (limit - printer.count) if limit else None]
                        )
        finally:
            await consumer.stop()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail ends
        _run(go())


@dataclass(frozen=True)
class TailRecord:
    topic: str
    value: bytes
    correlation_id: str | None
    timestamp_ms: int


class TailPrinter:
    """Records a batch at a time, in time order, grouped by correlation id: a group opens with the
    id's first eight characters, and every line of it carries the id's colour. With
    ``json_lines``, each record is one JSON object on a line of its own instead."""

    def __init__(self, console: Any, topic_prefix: str = "", *, json_lines: bool = False) -> None:
        self.console = console
        self.topic_prefix = topic_prefix
        self.json_lines = json_lines
        self.seen: set[str] = set()
        self.last_group: str | None = None
        self.count = 0

    def show(self, records: list[TailRecord]) -> None:
        records = sorted(records, key=lambda r: r.timestamp_ms)
        first_at: dict[str, int] = {}
        for record in records:
            first_at.setdefault(record.correlation_id or "-", record.timestamp_ms)
        for record in sorted(
            records, key=lambda r: (first_at[r.correlation_id or "-"], r.timestamp_ms)
        ):
            self._line(record)

    def _line(self, record: TailRecord) -> None:
        self.count += 1
        if self.json_lines:
            self.console.file.write(json.dumps(self.document(record), default=_json_value) + "\n")
            self.console.file.flush()
            return
        group = record.correlation_id or "-"
        colour = render.colour_of(group)
        if group != self.last_group:
            again = " (continued)" if group in self.seen else ""
            self.console.print(Text(f"┌ {group[:8]}{again}", style=f"bold {colour}"))
            self.seen.add(group)
            self.last_group = group
        name = record.topic.removeprefix(self.topic_prefix)
        when = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
        line = Text("│ ", style=colour)
        line.append(f"{when} {name:<33} ", style="dim")
        line.append_text(self._body(name, record.value))
        self.console.print(line, overflow="ellipsis", no_wrap=True)

    def document(self, record: TailRecord) -> dict[str, Any]:
        """A record as `tail --json` prints it: where and when, then what `_body` shows."""
        name = record.topic.removeprefix(self.topic_prefix)
        when = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).isoformat()
        head = {"topic": name, "timestamp": when, "correlation_id": record.correlation_id}
        registry = BY_NAME.get(name)
        if registry is None:
            document = _json_object(record.value)
            if document is None:
                return {**head, "bytes": len(record.value)}
            if document.get("reason"):
                return {**head, "dead_letter": document["reason"]}
            return {**head, "type": document.get("type")}
        try:
            message = decode(registry, record.value)
        except ValueError as error:
            return {**head, "undecodable": str(error)}
        return {**head, **_document(message)}

    def _body(self, name: str, value: bytes) -> Text:
        registry = BY_NAME.get(name)
        if registry is None:  # a dead letter or a caller's reply topic: show its type or reason
            document = _json_object(value)
            if document is None:
                return Text(f"({len(value)} bytes)")
            reason = document.get("reason")
            return Text(
                f"dead letter: {reason}" if reason else str(document.get("type", "?")),
                style="yellow",
            )
        try:
            return render.message_line(
                decode(registry, value), arrow="→" if registry.answers_commands else "←"
            )
        except ValueError as error:
            return Text(f"undecodable: {error}", style="red")


def _json_object(value: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


if __name__ == "__main__":
    app()
