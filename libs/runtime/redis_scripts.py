"""Redis Lua scripts kept as ``.lua`` files beside the module that owns their keys.

A module declares its scripts once (``scripts = LuaScripts(__file__, "verify_otp", ...)``)
and binds them to a client when it has one; redis-py's `Script` runs them by SHA and loads
them again only if the server has forgotten them (after a restart).

On Redis Cluster every key a script touches must hash to one slot: the keys of one owner (a
recipient, a user name) carry one hash tag, `hash_tag`'s, and a script touches one owner's keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from redis.commands.core import AsyncScript

from libs.runtime.redis_client import RedisClient

MEMO = (Path(__file__).with_name("memo.lua")).read_text()
"""``memoised(key, ttl_ms, answer)``: the one memo format of every count-and-memo script."""


class LuaScripts:
    """The named ``.lua`` files in a module's folder, read once at import; a script that calls
    ``memoised`` gets it put before its source."""

    def __init__(self, module_file: str, *names: str) -> None:
        folder = Path(module_file).resolve().parent
        self.sources = {name: with_memo((folder / f"{name}.lua").read_text()) for name in names}

    def bind(self, client: RedisClient) -> dict[str, AsyncScript]:
        """Register every script with ``client``; call each as ``await script(keys=[...], args=[...])``."""
        return {name: client.register_script(source) for name, source in self.sources.items()}


def with_memo(source: str) -> str:
    return f"{MEMO}\n{source}" if "memoised(" in source else source


def hash_tag(*parts: str) -> str:
    """``{<hex>}``: the hash tag of one owner's keys, from whatever characters its ids hold (a
    ``{`` or ``}`` in an id would otherwise end or empty the tag, and split its keys' slots)."""
    canonical = json.dumps(parts, separators=(",", ":"))
    return "{" + hashlib.sha256(canonical.encode()).hexdigest()[:32] + "}"
