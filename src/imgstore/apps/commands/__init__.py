"""The subcommands of ``imgstore``: one module each, with ``NAME``, ``SUMMARY``, ``DESCRIPTION``,
``configure(parser)`` and ``run(args) -> exit status``."""
