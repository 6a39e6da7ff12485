"""Contained agents: every process Codeyard starts for a run sees its worktree and nothing of
the server's secrets (bubblewrap, an allowlisted environment). See :func:`contain`."""

from codeyard.sandbox.bwrap import Network, SandboxSpec, bwrap_argv, bwrap_options
from codeyard.sandbox.launch import Contained, build_spec, contain
from codeyard.sandbox.policy import MODES, NETWORKS, Mode, Sandbox, SandboxUnavailable
from codeyard.sandbox.probe import Probe, probe

__all__ = [
    "MODES",
    "NETWORKS",
    "Contained",
    "Mode",
    "Network",
    "Probe",
    "Sandbox",
    "SandboxSpec",
    "SandboxUnavailable",
    "build_spec",
    "bwrap_argv",
    "bwrap_options",
    "contain",
    "probe",
]
