"""The check a contained command makes, once inside the sandbox, that its server still lives.

Every link of a run's process chain must die with the server, even on ``kill -9`` (issue 12).
A link started by ``exec`` keeps its death signal (``PR_SET_PDEATHSIG``); one started by a
fork does not, and has none until it sets its own — if its parent died before, the kernel
never tells it. So each forked link sets the signal and then checks that its parent is still
the one that forked it (``agents.process``: the spawn gate, ``TIE_CHECK``,
``fork_tie_prefix``). bubblewrap forks twice where no prefix can go: its sandboxed child sets
``--die-with-parent`` only once the whole sandbox is mounted (milliseconds, more under load),
and a child whose bwrap died meanwhile builds the sandbox and runs the command anyway.

So the command's own first step, inside the sandbox, is :func:`prefix`: it waits until
bwrap's pid 1 sleeps in ``wait`` (its death signal is set before that), then reads the
server's ``stat`` through :data:`FD`, a ``/proc/<server pid>`` directory the link next to the
server opened (:data:`OPEN`) and named in :data:`ENV`. Gone, or a zombie: the command does
not start (exit 125). Alive: every link above is armed, so the server's death now reaches
the command; the descriptor is closed before the command starts (it would show the server's
``/proc`` entry inside the sandbox). Without :data:`ENV` (nothing opened it: a process not
started through the gate) the prefix only ``exec``s the command.
"""

from __future__ import annotations

__all__ = ["ENV", "FD", "OPEN", "prefix"]

#: The environment variable that says the lifeline is open (its value is :data:`FD`).
ENV = "CODEYARD_LIFELINE"
#: The lifeline's descriptor number (fixed: ``/bin/sh`` can only name 0-9 in redirections).
FD = 9

#: Shell that opens the lifeline on the server's ``/proc`` entry, for a link whose parent was
#: just checked to be the server (``$PPID``); on failure the server is gone: exit 125.
OPEN = f'exec {FD}</proc/"$PPID" || exit 125; export {ENV}={FD}; '

_CHECK = (
    f'if [ -n "${ENV}" ]; then '
    # bwrap's pid 1 arms its death signal right before it sleeps in wait(): until it sleeps,
    # the server's death might not reach it. It is usually asleep already; on a loaded
    # machine it may wait its turn for a while (polled every ms, bounded: ~3 s and more).
    "i=0; while [ $i -lt 3000 ] && read -r s < /proc/1/stat && s=${s##*) } "
    '&& [ "${s%% *}" != S ]; do i=$((i+1)); sleep 0.001; done; '
    f'read -r s 2>/dev/null < /proc/self/fd/"${ENV}"/stat || exit 125; '
    "s=${s##*) }; "
    'case "$s" in Z*|X*) exit 125;; esac; '
    f"exec {FD}<&-; "
    "fi; "
    f"unset {ENV}; "
)


def prefix(then: str = "") -> list[str]:
    """The argv prefix a contained command runs under, inside bubblewrap (see the module).
    ``then``: more shell this same shell runs before it becomes the command (the lowering of
    a session made inside: ``priority.group_line``), one program start fewer than its own."""
    return ["/bin/sh", "-c", _CHECK + then + 'exec "$@"', "codeyard-alive"]
