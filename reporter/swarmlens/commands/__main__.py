"""`python -m swarmlens.commands ...`: the `swarmlens` command (how `swarmlens up` starts its children)."""

import sys

from swarmlens.commands.dispatch import main

sys.exit(main())
