"""Workflows in Chromium (issue 20): the YAML editor shows the server's problems inline as you
type, saves, executes against a real repository; the execution view goes live through the
SSE stream, draws the step graph (waves, pending steps included), shows the approval gate and
each step's state, and links the run step's run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.slow]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """As the package's fixture, with room for a busy machine's slower start."""
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


BROKEN = "name: gate\nsteps:\n  - {id: impl, type: run, provider: script}\n"
GOOD = """name: gate
steps:
  - id: impl
    type: run
    provider: script
    prompt: say hello
    agent_options: {scenario: {steps: [{say: hello}]}}
  - {id: ok, type: approval, message: "Look at run ${steps.impl.number}"}
  - {id: after, type: shell, in: impl, command: "echo done", depends_on: [ok]}
inputs:
  greeting: {type: string, default: hello}
outputs:
  run: {value: "${steps.impl.number}", type: integer}
"""


def test_write_validate_save_execute_and_approve(
    browser: Browser, server: ServerProcess, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    page = browser.new_page()
    page.goto(f"{server.url}/login#token={server.token}")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    page.get_by_test_id("nav-workflows").click()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    page.get_by_test_id("workflow-new").click()

    editor = page.get_by_test_id("workflow-source")
    editor.fill(BROKEN)
    problems = page.get_by_test_id("workflow-problems")
    expect(problems).to_contain_text("prompt: Field required")
    expect(page.get_by_test_id("workflow-save")).to_be_disabled()
    editor.fill(GOOD)
    expect(page.get_by_test_id("workflow-valid")).to_contain_text("impl → ok → after")
    page.get_by_test_id("workflow-save").click()
    expect(page.get_by_role("heading", name="gate")).to_be_visible()

    page.get_by_label("Repository path").fill(str(repo))
    page.get_by_test_id("workflow-execute").click()
    approval = page.get_by_test_id("workflow-approval")
    expect(approval).to_contain_text("ok waits for a decision", timeout=30_000)
    # The graph: every step in its wave, the one not reached yet shown pending.
    graph = page.get_by_test_id("execution-graph")
    expect(graph.locator("[data-node='impl']")).to_have_attribute("data-status", "completed")
    expect(graph.locator("[data-node='ok']")).to_have_attribute("data-status", "waiting")
    expect(graph.locator("[data-node='ok']")).to_contain_text("after impl")
    expect(graph.locator("[data-node='after']")).to_have_attribute("data-status", "pending")
    approval.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("execution-status")).to_have_text("completed", timeout=30_000)
    expect(graph.locator("[data-node='after']")).to_have_attribute("data-status", "completed")
    expect(graph.locator("[data-node='impl'] a")).to_have_attribute("href", re.compile("/runs/"))
    # Typed inputs and outputs with their declared types (the output checked at the end).
    inputs = page.get_by_test_id("execution-inputs").locator("tr[data-name='greeting']")
    expect(inputs).to_contain_text('string"hello"')
    outputs = page.get_by_test_id("execution-outputs").locator("tr[data-name='run']")
    expect(outputs).to_contain_text("integer1")
    steps = page.get_by_test_id("execution-steps")
    expect(steps.locator("tr[data-step='after']")).to_contain_text("exit 0")
    steps.locator("tr[data-step='impl'] a").click()
    expect(page).to_have_url(re.compile(r"/runs/run_\w+$"))
    expect(page.get_by_text("hello").first).to_be_visible()
    page.close()
