"""``python -m winarm``: the same as the ``winarm`` command."""

from .cli import main

main()
