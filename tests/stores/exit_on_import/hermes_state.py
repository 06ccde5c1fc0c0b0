"""An adversarial store: it ends the process that imports it, at once and with no output (os._exit).

In the explore sandbox that process is a checker: the exploration must end as a lab failure
that says so (exit 3), never with verdicts on the states it did not check, and leave nothing
behind.
"""

import os

os._exit(7)
