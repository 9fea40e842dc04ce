"""The answer file: settings, Windows command lines, rendering, validation, and the answer medium."""
