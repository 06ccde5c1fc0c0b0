"""`python3 -m repro.lossyfs`: run the lossyfs daemon (see repro.lossyfs.daemon)."""

from __future__ import annotations

from repro.lossyfs.daemon import main

raise SystemExit(main())
