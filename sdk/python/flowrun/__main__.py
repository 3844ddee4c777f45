"""``python -m flowrun run module:function``: run a flow as this process's execution.

The agent image's entrypoint. ``module`` is imported with the current
directory on ``sys.path``; ``function`` is a ``@flow`` (a plain function is
wrapped in one). Exit codes are the flow's (docs/python.md).
"""

from __future__ import annotations

import importlib
import os
import sys

from . import _core
from .flow import Flow, flow

USAGE = "usage: python -m flowrun run <module>:<function>"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "run" or ":" not in argv[1]:
        print(USAGE, file=sys.stderr)
        return _core.EXIT_CONFIG_ERROR
    module_name, _, attr = argv[1].partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        target = module
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        return _core.report_config_error(f"cannot load flow '{argv[1]}': {type(e).__name__}: {e}")
    if not callable(target):
        return _core.report_config_error(f"'{argv[1]}' is not a function")
    f = target if isinstance(target, Flow) else flow(target)
    return f.run_process()


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
