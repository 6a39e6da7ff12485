"""The pull-request host registry: built-in hosts register here exactly as a plug-in would.

A host kind registers a factory, ``PrConfig -> PullRequestHost``, under its name. For a remote,
:func:`host_for` builds every registered host, keeps those that :meth:`~PullRequestHost.matches`
the remote, and returns the first whose :meth:`~PullRequestHost.problem` is None. Registration
order is preference order: the built-ins register GitHub's REST API (token) before ``gh``.

To add a host (Bitbucket, say)::

    from codeyard.prs import registry
    registry.register("bitbucket", lambda config: BitbucketHost(config))
"""

from __future__ import annotations

from collections.abc import Callable

from codeyard.domain.errors import BadRequest
from codeyard.domain.registry import Registry
from codeyard.prs.base import PrConfig, PullRequestHost, parse_remote, redact_remote

__all__ = ["HOSTS", "HostFactory", "host_for", "names", "register", "unregister"]

HostFactory = Callable[[PrConfig], PullRequestHost]

#: Host kinds by name, in preference order; the same registry shape as agent providers'.
HOSTS: Registry[HostFactory] = Registry("pull request host")


def register(name: str, factory: HostFactory) -> None:
    """Add a host kind (or replace the one of that name, keeping its place in the order)."""
    HOSTS.register(name, factory)


def unregister(name: str) -> None:
    HOSTS.unregister(name)


def names() -> list[str]:
    """Registered host kinds in preference order."""
    return HOSTS.names()


async def host_for(remote_url: str, config: PrConfig) -> PullRequestHost:
    """The host to open and read pull requests for ``remote_url`` with.

    ``BadRequest`` when no host serves the remote (saying what is supported), or when those that
    do cannot be used (saying what to configure: the token setting, or ``gh auth login``).
    """
    shown = redact_remote(remote_url)
    hosts = [factory(config) for factory in HOSTS.entries()]
    matching = [host for host in hosts if host.matches(remote_url)]
    if not matching:
        remote = parse_remote(remote_url)
        where = f"on {remote.host}" if remote else "not a network remote"
        raise BadRequest(
            f"Cannot open pull requests for the remote '{shown}' ({where}): no configured forge "
            f"serves it. GitHub: github.com, or an Enterprise server set with "
            f"CODEYARD_GITHUB_API_URL (now '{config.github_api_url}'); GitLab: "
            f"CODEYARD_GITLAB_URL (now '{config.gitlab_url}'); Gitea or Forgejo: "
            f"CODEYARD_GITEA_URL (now '{config.gitea_url or 'unset'}').",
            remote=shown,
            hosts=names(),
        )
    problems: list[str] = []
    for host in matching:
        problem = await host.problem()
        if problem is None:
            return host
        problems.append(problem)
    raise BadRequest(", or ".join(problems) + ".", remote=shown, hosts=[h.name for h in matching])
