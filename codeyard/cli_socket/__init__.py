"""The CLI's Unix socket (CodePiper's): ``<data dir>/run/cli.sock``, where file permissions are
the authentication. Only the OS user that runs Codeyard (and root) can connect, so the socket
carries what no HTTP route offers: resetting a user's password or two-factor authentication
when nobody can sign in (``codeyard users reset-password`` / ``reset-mfa``).

``app`` is the socket's own small ASGI app (it shares the server's services, not its routes or
its token checks); ``server`` binds the socket and serves it beside the HTTP server.
"""

from codeyard.cli_socket.server import CliSocket, socket_path

__all__ = ["CliSocket", "socket_path"]
