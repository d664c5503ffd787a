"""Named failpoints for fault-injection tests: the process kills itself at a chosen point.

Set ``ACCORD_FAILPOINT=<point>[:SIGTERM|SIGKILL]`` (SIGKILL by default) and the process
sends itself that signal when it reaches `<point>`. Unset (always, outside such tests),
a failpoint is one dictionary lookup. Points: ``train:mid-training`` (half the member
results are in), ``publish:mid-files`` (one file of the version uploaded),
``publish:before-manifest`` (every file uploaded, no manifest yet),
``promote:before-alias`` (the version is published, the alias not yet moved).
"""

from __future__ import annotations

import os
import signal

ENV = "ACCORD_FAILPOINT"
POINTS = ("train:mid-training", "publish:mid-files", "publish:before-manifest", "promote:before-alias")


def failpoint(name: str) -> None:
    """Kill this process with the configured signal if `name` is the configured point."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, sig = spec, "SIGKILL"
    head, _, tail = spec.rpartition(":")
    if tail.startswith("SIG"):
        point, sig = head, tail
    if point == name:
        os.kill(os.getpid(), getattr(signal, sig))
