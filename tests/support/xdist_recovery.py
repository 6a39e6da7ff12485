"""pytest-xdist's file scheduler, mended so the suite ends after a worker dies, and balanced.

The suite's hard per-test limit (tests/conftest.py) ends a worker whose test hangs. pytest-xdist
3.8.0 (the newest release) then deadlocks under ``--dist loadfile`` near the end of the run, and
CI waits until its own time limit (pytest-dev/pytest-xdist#1378, #1327, #1371; the fixes are
merged or open upstream, not released): the dead worker's finished files go back on the queue as
empty work, the test it died in is started again, and a replacement handed a single test waits
for a second one that never comes. Delete ``remove_node`` and ``_reschedule`` below once a
release carries the fixes.

Balance: a file is one unit of work, run on one worker, so a file of real-CLI tests
parametrized over ten agents (several minutes) could end the phase alone on one worker while
the others idle. The files in :data:`SPLIT_BY_CASE` are cut into one unit per agent (their
module fixtures are per agent already), and units are handed out by estimated cost, the real
agents and the browser first, not by test count (xdist's default: a file of fifty
millisecond unit tests went before a file of nine real-agent tests).
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

#: Files whose tests are parametrized by agent first (``test_x[kilo]``): one unit per agent
#: family (the id's first word: ``codex`` and ``codex-acp`` share one).
SPLIT_BY_CASE = frozenset(
    {
        "tests/clis/test_agent_contract.py",
        "tests/clis/test_readme_offline.py",
        "tests/clis/test_sandbox_escape.py",
        "tests/clis/test_model_unreachable.py",
        "tests/clis/test_agents_mcp.py",
    }
)
#: Estimated seconds per test, by directory (measured order of magnitude on 2 cores).
_COST_PER_TEST = {"tests/clis/": 10.0, "tests/ui/": 8.0, "tests/integration/": 2.0}
#: Single tests far above their directory's estimate (fuzzers, property tests).
_COST_OF_FILE = {
    "tests/integration/test_schemathesis.py": 180.0,
    "tests/integration/test_workspace_properties.py": 70.0,
}


def _cost(scope: str, tests: int) -> float:
    path = scope.split("[", 1)[0]
    if path in _COST_OF_FILE:
        return _COST_OF_FILE[path]
    per = next((c for d, c in _COST_PER_TEST.items() if path.startswith(d)), 0.3)
    return per * tests


class RecoveringLoadFileScheduling(LoadFileScheduling):
    """``--dist loadfile`` that requeues only unfinished files, never stalls at the end, and
    hands out the costliest units first."""

    def _split_scope(self, nodeid: str) -> str:
        path, _, test = nodeid.partition("::")
        if path in SPLIT_BY_CASE and test.endswith("]") and "[" in test:
            case = test[test.index("[") + 1 : -1].split("-", 1)[0]
            return f"{path}[{case}]"
        return path

    def schedule(self) -> None:
        if (
            self.collection is None
            and self.collection_is_completed
            and self._check_nodes_have_same_collection()
        ):
            # Order the units before the first distribution (the base class builds the queue
            # and hands out from its front in the same call): its keys are put here first,
            # costliest first, and an ordered dict keeps a key's place when it is set again.
            collection = list(next(iter(self.registered_collections.values()), []))
            units: dict[str, dict[str, bool]] = {}
            for nodeid in collection:
                units.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            self.workqueue.clear()
            for scope, unit in sorted(units.items(), key=lambda u: -_cost(u[0], len(u[1]))):
                self.workqueue[scope] = unit
        super().schedule()

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
