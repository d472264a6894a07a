"""The pure parts of local supervision (run/supervise.py): command lookup, signal names."""

from __future__ import annotations

import signal

from run_job.run import supervise


def test_resolve_command(tmp_path):
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    env = {"PATH": f"{tmp_path}:/nonexistent"}
    assert supervise.resolve_command("tool", env) == (str(exe), 0, "")
    assert supervise.resolve_command("plain", env)[1] == 126
    assert supervise.resolve_command("missing", env)[1] == 127
    assert supervise.resolve_command(str(tmp_path), env)[1] == 126
    assert supervise.resolve_command("./nope", env)[1] == 127


def test_signal_name():
    assert supervise.signal_name(signal.SIGTERM) == "SIGTERM"
    assert supervise.signal_name(200) == "signal 200"
