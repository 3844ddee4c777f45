"""Harnesses of the Python SDK's tests: a real PostgreSQL, the project's fake LLM, agent processes."""
