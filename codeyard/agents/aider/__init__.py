"""Aider (``aider-chat``) as the ``aider`` provider: Codeyard's ACP bridge (``bridge.py``) run
by the Python of aider's own venv, driven like every ACP agent."""

from codeyard.agents.aider.provider import AIDER_PYTHON, AiderProvider

__all__ = ["AIDER_PYTHON", "AiderProvider"]
