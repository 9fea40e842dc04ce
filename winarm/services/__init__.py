"""Helpers beside QEMU: smbd for the share, swtpm for the TPM, the metrics endpoint."""
