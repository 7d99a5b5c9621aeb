"""The `swarmlens` command: the dispatcher (``dispatch``), what several commands share (``common``),
and one module per subcommand, each with ``add_arguments(parser)`` and ``run(args)``; only the
chosen subcommand's module is imported. ``python -m swarmlens.commands`` is the same command.
"""
