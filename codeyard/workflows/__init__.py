"""Workflows (issue 20): declarative multi-step agent work whose every run step is a governed run.

Pure parts (no I/O): :mod:`.model` (definitions and their JSON Schema), :mod:`.expressions`
(templates, conditions, extraction), :mod:`.graph` (the resolved DAG), :mod:`.state` (step state
folded from the execution's ``workflow.*`` events). The rest does I/O: :mod:`.store` (tables),
:mod:`.engine` and :mod:`.steps` (executing steps through the run service, retrying the ones
that say so), :mod:`.judging` (schema extraction and best-of-N judgement through the utility
model), :mod:`.watch` (run statuses, observed through the database like any client would).
"""
