"""QEMU itself: the command line, firmware, disk images, the QMP machine and the serial console."""
