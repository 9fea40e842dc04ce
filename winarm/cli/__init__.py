"""The 'winarm' command: thin commands over the rest, with one error handler."""
