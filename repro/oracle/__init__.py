"""The oracle: what a configuration promises under a crash class (promises), and a trial's verdict (verdicts)."""
