# winarm: Windows 11/10 for ARM64 in QEMU, as a container. One Dockerfile for linux/arm64 (KVM, near native
# speed) and linux/amd64 (TCG emulation, much slower); what differs by architecture is decided below from
# TARGETARCH, set by the builder for each target platform.
#
#   docker build -t winarm .                                       # the virtio-win drivers are downloaded
#   docker build --build-arg VIRTIO_WIN_URL= -t winarm .           # offline: put the virtio-win ISO or its
#                                                                  # extracted tree in container/virtio-win/
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG TARGETARCH
# PIP_OFFLINE=1: install winarm and its packages only from container/wheels/ (no package index)
ARG PIP_OFFLINE=
# virtio-win 0.1.266-1 (the ARM64 drivers winarm installs); override both to use another release
ARG VIRTIO_WIN_URL=https://fedorapeople.org/groups/virt/virtio-win/direct-downloads/archive-virtio/virtio-win-0.1.266-1/virtio-win.iso
ARG VIRTIO_WIN_SHA256=57b0f6dc8dc92dc2ae8621f8b1bfbd8a873de9bedc788c4c4b305ea28acc77cd

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# QEMU for aarch64 guests, UEFI firmware, swtpm, Samba for the share, and Python. qemu-system-arm is the
# package on both architectures; on amd64 it emulates (TCG), on arm64 it runs on KVM when /dev/kvm is given.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      qemu-system-arm qemu-efi-aarch64 qemu-utils swtpm swtpm-tools \
      samba socat libnss-wrapper \
      python3 python3-venv ca-certificates curl libarchive-tools \
 && case "${TARGETARCH:-$(dpkg --print-architecture)}" in \
      arm64) echo "arm64: KVM is used when the container gets /dev/kvm" ;; \
      amd64) echo "amd64: guests run under TCG emulation" ;; \
      *) echo "unsupported architecture ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && rm -rf /var/lib/apt/lists/*

# The virtio-win ARM64 drivers: a local copy in container/virtio-win/ (an ISO or an extracted tree) wins;
# else the pinned download, checked against its SHA-256. Only the ARM64 folders are kept.
COPY container/virtio-win/ /tmp/virtio-win/
COPY container/fetch-virtio-win /usr/local/sbin/fetch-virtio-win
RUN fetch-virtio-win /tmp/virtio-win /opt/winarm/virtio-win "${VIRTIO_WIN_URL}" "${VIRTIO_WIN_SHA256}" \
 && rm -rf /tmp/virtio-win

# winarm itself, from this source tree, in its own virtual environment. Wheels put in container/wheels/
# are used first (offline builds).
COPY container/wheels/ /tmp/wheels/
COPY setup.cfg pyproject.toml entrypoint.py README.md /opt/winarm/src/
COPY winarm/ /opt/winarm/src/winarm/
COPY unattend/ /opt/winarm/src/unattend/
COPY drivers/ /opt/winarm/src/drivers/
RUN python3 -m venv /opt/winarm/venv \
 && /opt/winarm/venv/bin/pip install --no-cache-dir ${PIP_OFFLINE:+--no-index} --find-links /tmp/wheels \
      '/opt/winarm/src[chart]' \
 && ln -s /opt/winarm/venv/bin/winarm /usr/local/bin/winarm \
 && cp /opt/winarm/src/entrypoint.py /opt/winarm/entrypoint.py \
 && rm -rf /tmp/wheels

ENV STORAGE=/storage \
    DRIVERS=/opt/winarm/virtio-win \
    WINARM_RUN_DIR=/run/winarm \
    VNC=0.0.0.0 \
    UID=1000 \
    GID=1000
VOLUME ["/storage", "/shared"]
# 5900: VNC display (0.0.0.0 inside the container; publish it on the host's loopback), 9108: metrics when
# METRICS_PORT=9108 is set, on the container's loopback unless METRICS_ADDRESS=0.0.0.0 opens it to whoever
# can reach the container's address
EXPOSE 5900 9108

# entrypoint.py runs as PID 1: it forwards SIGTERM/SIGINT/SIGHUP to `winarm up`, which shuts the guest down
# gracefully (power button, then quit after TIMEOUT), and it reaps every child.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/winarm/venv/bin/python", "/opt/winarm/entrypoint.py"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["winarm", "status"]
