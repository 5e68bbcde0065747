"""``python -m flows.cli`` == ``stad``."""

from flows.cli import main

main()
