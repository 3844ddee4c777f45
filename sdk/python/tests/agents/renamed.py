"""basic.shaped after a refactoring that renamed its first checkpoint: `first` is now `doubled`.

The old function exists nowhere in this code, so the engine takes `doubled(1)`,
asked where `first(1)` was completed with the same arguments, for a rename
(test_divergence.py). A module of its own because a name still decorated in
the running process is never taken for a renamed one's old name.
"""

from __future__ import annotations

from flowrun import checkpoint, flow, wait


@checkpoint
def doubled(x: int) -> int:
    return x * 2


@checkpoint
def second(x: int) -> int:
    return x + 1


@flow
def shaped() -> dict:
    a = doubled(1)
    b = second(a)
    if not wait(bool, name="go", question="go on?"):
        return {"a": a}
    return {"a": a, "b": b}
