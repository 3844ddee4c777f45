"""A flow for the replay tests (test_replay.py): a loop of typed checkpoints, each one LLM call.

The prompt carries the run's uid, so the fake LLM's by_prompt counts which
run's bodies ran live; the checkpoint's inputs (its fingerprint) do not, so a
replay of another run finds the source's rows.
"""

from __future__ import annotations

from pydantic import BaseModel

import flowrun
from flowrun import checkpoint, flow


class Note(BaseModel):
    i: int
    text: str


@checkpoint
def step(i: int) -> Note:
    return Note(i=i, text=flowrun.llm(f"{flowrun.current().uid} step {i}"))


@flow
def steps(n: int = 6) -> dict:
    notes = [step(i) for i in range(1, n + 1)]
    # Copied outputs are deserialized exactly as cached ones: typed values.
    assert all(isinstance(note, Note) and note.i == i for i, note in enumerate(notes, 1)), notes
    info = flowrun.current()
    return {"texts": [note.text for note in notes], "is_replay": flowrun.is_replay(),
            "current_is_replay": info.is_replay, "copied": info.stats["copied_checkpoints"]}
