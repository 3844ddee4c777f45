"""The research agent in Python: research -> wait for a person's approval -> analysis.

The same flow as examples/research-agent/main.cc, row for row: run it with
`python -m flowrun run agent:research_agent` (the Python agent image's
entrypoint) or `python agent.py`, with the environment a FlowRun's Job gets
(docs/environment.md). Every start runs the flow from the top: "research"
comes from the cache after the first execution, the approval is asked once,
the analysis runs once.
"""

from __future__ import annotations

import flowrun
from flowrun import checkpoint, flow, wait


@checkpoint(inputs=lambda topic: {"topic": topic})
def research(topic: str) -> str:
    return flowrun.llm(f"Research the topic '{topic}'. List the three most important facts.")


@checkpoint(inputs=None)
def analyze(notes: str) -> str:
    return flowrun.llm("Analyze these research notes and give a recommendation: " + notes)


@flow
def research_agent(topic: str = "durable AI agents") -> dict:
    notes = research(topic)
    flowrun.save_artifact("research-notes", {"topic": topic, "notes": notes})
    if not wait(bool, name="proceed", question=f"Research on '{topic}' is complete. Proceed to analysis?"):
        return {"status": "stopped", "topic": topic}
    return {"status": "done", "topic": topic, "analysis": analyze(notes)}


if __name__ == "__main__":
    research_agent.main()
