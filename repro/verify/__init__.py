"""After the crash: the probe gathers facts in the restarted machine (facts, probe, sandbox), diff holds them against the ledger."""
