"""A small real arm64 Linux guest, built from Debian packages, to test the launcher without Windows."""
