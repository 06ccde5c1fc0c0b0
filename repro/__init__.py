"""The crash lab: run a store inside a small machine, fault it, and judge what survived."""
