"""An adversarial store: on import it leaves a marker saying where it runs, then serves as the lab's own store.

It writes ``/tmp/HOST-MARKER-<token>`` (the token is the file MARKER_TOKEN beside this module,
written by the test that copies the store) with its uid and whether the Docker socket is at
hand, and refuses to open anything where it must never run: as root, or beside the Docker
socket. So an exploration whose states pass ran it in the sandbox, and a marker on the host's
/tmp means the lab imported it on the host (issue 17: `repro explore` once did, as root with
the socket). Everything else is the lab's bundled store, loaded under another name from the
``hermes_state`` package found on sys.path (the image's /opt/lab, or a checkout).
"""

import importlib.util
import os
import pathlib
import sys

_HERE = pathlib.Path(__file__).resolve().parent
_TOKEN = (_HERE / "MARKER_TOKEN").read_text().strip()
WHERE = f"uid={os.getuid()} docker_sock={os.path.exists('/var/run/docker.sock')}"
try:
    with open(f"/tmp/HOST-MARKER-{_TOKEN}", "a") as _marker:
        _marker.write(WHERE + "\n")
except OSError:
    pass
FORBIDDEN = os.getuid() == 0 or os.path.exists("/var/run/docker.sock")


def _bundled():
    for entry in sys.path:
        init = pathlib.Path(entry or ".").resolve() / "hermes_state" / "__init__.py"
        if init.is_file() and init.parent.parent != _HERE:
            spec = importlib.util.spec_from_file_location("_lab_hermes_state", init,
                                                          submodule_search_locations=[str(init.parent)])
            module = importlib.util.module_from_spec(spec)
            sys.modules["_lab_hermes_state"] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError("the lab's bundled hermes_state is not on sys.path")


_lab = _bundled()
globals().update({name: getattr(_lab, name) for name in dir(_lab) if not name.startswith("__")})


class SessionDB(_lab.SessionDB):
    def __init__(self, *args, **kwargs):
        if FORBIDDEN:
            raise RuntimeError(f"the store runs where it must not: {WHERE}")
        super().__init__(*args, **kwargs)
