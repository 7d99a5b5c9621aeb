"""`python -m swarmlens.cli ...`: the `swarmlens` command, kept for scripts and tests that start it
this way; the command lives in swarmlens.commands."""

import sys

from swarmlens.commands.dispatch import main

if __name__ == "__main__":
    sys.exit(main())
