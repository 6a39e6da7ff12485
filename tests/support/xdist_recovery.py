"""pytest-xdist's file scheduler, mended so the suite ends after a worker dies.

The suite's hard per-test limit (tests/conftest.py) ends a worker whose test hangs. pytest-xdist
3.8.0 (the newest release) then deadlocks under ``--dist loadfile`` near the end of the run, and
CI waits until its own time limit (pytest-dev/pytest-xdist#1378, #1327, #1371; the fixes are
merged or open upstream, not released): the dead worker's finished files go back on the queue as
empty work, the test it died in is started again, and a replacement handed a single test waits
for a second one that never comes. Delete this module once a release carries the fixes.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController


class RecoveringLoadFileScheduling(LoadFileScheduling):
    """``--dist loadfile`` that requeues only unfinished files and never stalls at the end."""

    def remove_node(self, node: WorkerController) -> str | None:
        workload = self.assigned_work.pop(node)
        pending = [n for unit in workload.values() for n, done in unit.items() if not done]
        if not pending:
            return None
        crashed = pending[0]
        for scope, unit in workload.items():
            if crashed in unit:
                unit[crashed] = True  # reported failed by xdist; a rerun would only crash again
            if not all(unit.values()):
                self.workqueue[scope] = unit
        for other in list(self.assigned_work):
            self._reschedule(other)
        return crashed

    def _reschedule(self, node: WorkerController) -> None:
        if node.shutting_down:
            return
        if self.workqueue and self._pending_of(self.assigned_work[node]) <= 2:
            self._assign_work_unit(node)  # the released heuristic: top up a worker running low
        # A worker runs a test only once it knows the next one (or that none will come), so it
        # must hold two while there is work: the released code hands out one file per call, and a
        # replacement given a file with one test left waited for ever.
        while self.workqueue and self._pending_of(self.assigned_work[node]) < 2:
            self._assign_work_unit(node)
        if not self.workqueue:  # nothing left to hand out: each worker finishes what it holds
            for other in self.assigned_work:
                if not other.shutting_down:
                    other.shutdown()
