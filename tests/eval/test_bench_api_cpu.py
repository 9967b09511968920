"""``braid bench api``'s CPU accounting: a process's CPU seconds read from ``/proc``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from braid.eval.bench.api import process_cpu_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\nprint('done', flush=True)\ntime.sleep(30)\n"  # noqa: E501


def test_a_busy_child_is_charged_its_cpu_and_a_sleeping_one_nothing_more() -> None:
    child = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "done"  # 0.6 s of CPU spent, now asleep
        first = process_cpu_seconds(child.pid)
        time.sleep(0.3)
        second = process_cpu_seconds(child.pid)
    finally:
        child.kill()
        child.wait()
    assert first is not None and second is not None
    # 0.6 s of its own loop plus the interpreter's start-up (well under a second here).
    assert 0.6 <= first < 2.0
    assert second - first < 0.05  # asleep: no more CPU


def test_own_process_agrees_with_getrusage_and_a_gone_pid_is_none() -> None:
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    from_proc = process_cpu_seconds(os.getpid())
    assert from_proc is not None
    # /proc counts clock ticks (10 ms): the two clocks agree to a few ticks.
    assert abs(from_proc - time.process_time()) < 0.05
    assert process_cpu_seconds(None) is None
    assert process_cpu_seconds(2**22 + 12345) is None  # above the largest pid_max Linux allows
