"""winarm: run Windows 11/10 for ARM64 in QEMU, as a container entrypoint or from a shell."""

__version__ = "0.1.0"
