"""``signgate acls``: print the least-privilege ``kafka-acls.sh`` commands of a deployment."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from libs.runtime.settings import ConnectionSettings
from libs.tools.acls import as_json, deployment_principals, kafka_acls_commands, shell_script
from libs.tools.cli.errors import CliError, ExitCode
from services.registry import SERVICES
from signgate_contracts.topics import CALLER_REPLY_PREFIX


def acls(
    ctx: typer.Context,
    caller: Annotated[
        list[str] | None,
        typer.Option(
            help="An upstream caller's principal, e.g. User:portal (its reply topics are under "
            "<topic prefix>signgate.replies.portal.); NAME=PRINCIPAL names the reply prefix of a "
            "principal such as User:CN=portal,O=Example. Repeatable.",
        ),
    ] = None,
    gateway: Annotated[
        str, typer.Option(help="The gateway's principal (a caller of its own); '' for none.")
    ] = "User:gateway",
    provision: Annotated[
        str, typer.Option(help="The provisioning job's principal (creates topics); '' for none.")
    ] = "User:provision",
    principal_prefix: Annotated[
        str, typer.Option(help="Prepended to each service's user name: User:<prefix><service>.")
    ] = "",
    bootstrap_server: Annotated[
        str, typer.Option(envvar="SIGNGATE_KAFKA_BOOTSTRAP", help="Where kafka-acls.sh connects.")
    ] = "127.0.0.1:9092",
    command_config: Annotated[
        str, typer.Option(help="kafka-acls.sh's client properties: an admin allowed to alter ACLs.")
    ] = "admin.properties",
    caller_reply_prefix: Annotated[
        str,
        typer.Option(envvar="SIGNGATE_CALLER_REPLY_PREFIX", help="Callers' reply topic prefix."),
    ] = CALLER_REPLY_PREFIX,
    script: Annotated[str, typer.Option(help="The kafka-acls command to print.")] = "kafka-acls.sh",
) -> None:
    """Print, as a shell script (or JSON), the ACLs each principal needs and no more; the
    deployment's topic prefix and `--json` are the shared options'."""
    topic_prefix = getattr(ctx.obj, "topic_prefix", "")
    try:
        connections = ConnectionSettings(
            topic_prefix=topic_prefix, caller_reply_prefix=caller_reply_prefix
        )
        principals = deployment_principals(
            SERVICES,
            connections,
            callers=caller or (),
            gateway=gateway or None,
            provision=provision or None,
            principal_prefix=principal_prefix,
        )
    except ValueError as error:
        raise CliError(ExitCode.BAD_INPUT, "invalid principals", str(error)) from None
    if getattr(ctx.obj, "as_json", False):
        typer.echo(json.dumps(as_json(principals), indent=2))
        return
    typer.echo(
        shell_script(kafka_acls_commands(principals, bootstrap_server, command_config, script)),
        nl=False,
    )
