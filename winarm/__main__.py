"""``python -m winarm``: the same as the ``winarm`` command."""

from winarm.cli.main import main

main()
