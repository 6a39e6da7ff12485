"""The server's sandbox: built from the configuration, switched by the ``sandbox`` setting.

``on`` (the default) contains every process a run starts; only an admin may turn it ``off``,
and then ``serve``, ``doctor``, the settings API and the UI warn loudly. Where bubblewrap
cannot run and the setting is ``on``, new runs are refused with a problem naming the fix.
"""

from __future__ import annotations

import asyncio
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.config import Settings
from codeyard.domain.errors import Forbidden, ValidationFailed
from codeyard.sandbox import MODES, NETWORKS, Probe, Sandbox, environment
from codeyard.sandbox import setting as sandbox_setting
from codeyard.services.context import Services

__all__ = [
    "OFF_WARNING",
    "base",
    "check_admin_env",
    "check_admin_options",
    "check_mode_change",
    "current",
    "ensure_runnable",
    "status",
]

OFF_WARNING = (
    "SANDBOX OFF: agents, setup scripts and the script provider run as the server's user with "
    "full access to its files (the data directory's admin.token and secret.key included). "
    'An admin turned it off; set it back with PUT /api/settings {"sandbox": "on"}.'
)
#: Options that choose an arbitrary binary: an admin's choice only.
_BINARY_OPTIONS = ("cli_path", "command")


def base(settings: Settings) -> Sandbox:
    """The sandbox this configuration describes (on; the stored setting may turn it off)."""
    data = settings.data_dir.expanduser().resolve()
    private = tuple(dict.fromkeys([data, settings.worktree_root.expanduser().resolve()]))
    return Sandbox(
        bwrap_path=settings.bwrap_path, private=private, niceness=settings.agent_niceness
    )


async def current(svc: Services) -> Sandbox:
    return await sandbox_setting.effective(svc.engine, base(svc.settings))


async def status(svc: Services) -> dict[str, Any]:
    """The setting and whether bubblewrap works here (``GET /api/settings``, ``doctor``)."""
    sandbox = await current(svc)
    found = await _probe(sandbox)
    return {
        "mode": "on" if sandbox.enabled else "off",
        "available": found.ok,
        "bwrap": found.path,
        "version": found.version,
        "problem": found.problem,
        "warning": None if sandbox.enabled else OFF_WARNING,
    }


async def ensure_runnable(svc: Services) -> None:
    """Refuse a new run (409, with the fix) when the sandbox is on and cannot run."""
    sandbox = await current(svc)
    if sandbox.enabled:
        sandbox.check(await _probe(sandbox))


async def _probe(sandbox: Sandbox) -> Probe:
    """The probe's answer: known after the first probe (answered here, on the loop: a thread
    trip cost ~30 us of the loop's CPU and 50-250 us of wall per new run), else probed in a
    thread (the first one runs bwrap)."""
    found = sandbox.probed()
    return found if found is not None else await asyncio.to_thread(sandbox.probe)


def check_mode_change(principal: Principal, value: Any) -> None:
    """Only ``on``/``off``; turning it off is an admin's decision."""
    if value not in MODES:
        raise ValidationFailed(
            "The sandbox setting must be 'on' or 'off'.",
            errors=[{"loc": ["body", "sandbox"], "msg": "must be 'on' or 'off'"}],
        )
    if value == "off" and not principal.is_admin:
        raise Forbidden(
            "Only an admin may turn the sandbox off: it lets every agent read the server's "
            "secrets.",
            required_scope="admin",
        )


def check_admin_options(principal: Principal, options: dict[str, Any], where: str) -> None:
    """Options a non-admin may not give (``where``: ``agent_options`` or ``provider_config``):
    an arbitrary binary (``cli_path``, ``command``) or environment variables that change what
    gets loaded or run (``LD_PRELOAD``, ``PATH``, ``GIT_*``…). Also checks ``network``."""
    network = options.get("network")
    if network is not None and network not in NETWORKS:
        raise ValidationFailed(
            f"{where}.network must be one of: {', '.join(NETWORKS)} ('model-only' is not "
            "available yet).",
            errors=[{"loc": ["body", where, "network"], "msg": f"one of {list(NETWORKS)}"}],
        )
    if principal.is_admin:
        return
    binaries = [k for k in _BINARY_OPTIONS if options.get(k) not in (None, "", [])]
    if binaries:
        raise Forbidden(
            f"Only an admin may choose the agent's binary ({where}.{binaries[0]}); choose one "
            "of the installed providers (GET /api/providers) instead.",
            required_scope="admin",
        )
    env = options.get("env")
    names = [str(k) for k in env] if isinstance(env, dict) else []
    check_admin_env(principal, names, f"{where}.env")


def check_admin_env(principal: Principal, names: list[str], where: str) -> None:
    """403 when a non-admin sets ``PATH``, ``LD_*``, ``PYTHONPATH``, ``NODE_OPTIONS``,
    ``GIT_*`` or ``CODEYARD_*`` (in ``where``: ``agent_options.env``, an env set…)."""
    refused = [] if principal.is_admin else environment.refused(names)
    if refused:
        raise Forbidden(
            f"Only an admin may set {', '.join(refused)} in {where}: these variables "
            "change what programs load or run. Remove them, or ask an admin.",
            required_scope="admin",
            refused=refused,
        )
