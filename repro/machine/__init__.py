"""The Fly-like machines a trial runs on: the container, its limits, console, services, disk and restart."""
