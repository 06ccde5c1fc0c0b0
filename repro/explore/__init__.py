"""Crash-state exploration: a recorded trace, every state a persistence model allows, each judged like a trial."""
