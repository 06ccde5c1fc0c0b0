"""Code that runs inside the lab's machine: the workload, the cache filler, the fault agent (stdlib only)."""
