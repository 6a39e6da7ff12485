"""Pull requests on the forge a run's repository is pushed to.

Use :func:`codeyard.prs.registry.host_for` to get a :class:`~codeyard.prs.base.PullRequestHost`
for a remote URL, then ``create``/``get``. The built-in hosts are registered below through the
public registry, exactly as a plug-in registers its own: GitHub's REST API first (needs a token),
then the ``gh`` CLI (needs ``gh auth login``), then GitLab's merge requests and Gitea/Forgejo's
pull requests (each at its configured URL, with its token).
"""

from __future__ import annotations

from codeyard.prs import registry
from codeyard.prs.base import Check, PrConfig, PullRequest, PullRequestHost
from codeyard.prs.gh import GhCli
from codeyard.prs.gitea import GiteaRest
from codeyard.prs.github import GitHubRest
from codeyard.prs.gitlab import GitLabRest

__all__ = ["Check", "PrConfig", "PullRequest", "PullRequestHost", "registry"]

registry.register(GitHubRest.name, GitHubRest)
registry.register(GhCli.name, GhCli)
registry.register(GitLabRest.name, GitLabRest)
registry.register(GiteaRest.name, GiteaRest)
