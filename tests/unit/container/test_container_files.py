"""The container deliverables checked offline: the Dockerfile's promises, compose.yml, kubernetes.yml
(validated against a current Kubernetes version with kubernetes-validate) and the image workflow."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kv

from tests.vmtools import REPO_ROOT
from winarm.config.table import SETTINGS

REPO = REPO_ROOT
KNOWN_ENV = {name for setting in SETTINGS for name in setting.env}
KUBERNETES_VERSION = "1.33.0"


def load_all(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((REPO / name).read_text()) if doc]


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_is_one_file_for_both_architectures() -> None:
    steps = instructions(dockerfile())
    assert [w for w, _ in steps].count("FROM") == 1, "no per-architecture stages"
    assert ("ARG", "TARGETARCH") in steps
    run = " ".join(rest for word, rest in steps if word == "RUN")
    assert "arm64)" in run and "amd64)" in run, "what differs by architecture is decided from TARGETARCH"
    assert not list(REPO.glob("Dockerfile.*")), "no per-architecture copy of the Dockerfile"


def test_dockerfile_promises() -> None:
    steps = dict(instructions(dockerfile()))
    assert steps["ENTRYPOINT"] == '["/opt/winarm/venv/bin/python", "/opt/winarm/entrypoint.py"]'
    assert steps["STOPSIGNAL"] == "SIGTERM"
    assert steps["VOLUME"] == '["/storage", "/shared"]'
    assert steps["HEALTHCHECK"].endswith('CMD ["winarm", "status"]'), "the health check asks the daemon"
    assert set(steps["EXPOSE"].split()) == {"5900", "9108"}
    assert "METRICS_ADDRESS" not in steps["ENV"], "metrics stay on the container's loopback unless asked"
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in instructions(dockerfile())
            if word == "ARG" and "=" in rest}
    assert args["VIRTIO_WIN_URL"].endswith("/virtio-win-0.1.266-1/virtio-win.iso"), "a pinned release"
    assert re.fullmatch(r"[0-9a-f]{64}", args["VIRTIO_WIN_SHA256"]), "a pinned SHA-256"
    for package in ("qemu-system-arm", "qemu-efi-aarch64", "swtpm", "samba", "socat", "libnss-wrapper"):
        assert package in dockerfile()


def test_compose() -> None:
    (compose,) = load_all("compose.yml")
    service = compose["services"]["windows"]
    assert service["stop_grace_period"] == "2m" and service["stop_signal"] == "SIGTERM"
    assert "/dev/kvm" in service["devices"]
    assert {v.split(":")[1] for v in service["volumes"]} == {"/storage", "/shared"}
    assert all(port.startswith("127.0.0.1:") for port in service["ports"]), "published on loopback only"
    unknown = set(service["environment"]) - KNOWN_ENV
    assert not unknown, f"environment names winarm does not read: {unknown}"
    # issue 14: no literal password; the Windows password comes from a compose secret
    assert not {"PASSWORD", "VNC_PASSWORD", "SHARE_PASSWORD"} & set(service["environment"])
    secret = service["environment"]["PASSWORD_FILE"].removeprefix("/run/secrets/")
    assert secret in service["secrets"] and secret in compose["secrets"]
    timeout = int(service["environment"]["TIMEOUT"])
    assert timeout + 10 < 120, "the guest's shutdown timeout fits in the grace period"


def test_kubernetes_manifest_validates_and_keeps_one_pod_on_the_disk() -> None:
    docs = load_all("kubernetes.yml")
    for doc in docs:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
    kinds = {doc["kind"]: doc for doc in docs}
    assert set(kinds) == {"PersistentVolumeClaim", "Deployment", "Service"}
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) <= KNOWN_ENV
    assert pod["terminationGracePeriodSeconds"] >= int(env["TIMEOUT"]) + 30
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == ["winarm", "status"]
    kvm = next(v for v in pod["volumes"] if v["name"] == "kvm")
    assert kvm["hostPath"] == {"path": "/dev/kvm", "type": "CharDevice"}
    service_ports = {p["targetPort"] for p in kinds["Service"]["spec"]["ports"]}
    assert service_ports == {p["name"] for p in container["ports"]} - {"metrics"}, "metrics not in the Service"


def test_kubernetes_validation_can_fail() -> None:
    (deployment,) = [d for d in load_all("kubernetes.yml") if d["kind"] == "Deployment"]
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_image_workflow() -> None:
    (workflow,) = load_all(".github/workflows/image.yml")
    steps = workflow["jobs"]["image"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    for action in ("actions/checkout", "docker/setup-qemu-action", "docker/setup-buildx-action",
                   "docker/login-action", "docker/metadata-action", "docker/build-push-action"):
        assert action in uses
    build = next(s for s in steps if s.get("uses", "").startswith("docker/build-push-action"))
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True and build["with"]["tags"] == "${{ steps.meta.outputs.tags }}"
    meta = next(s for s in steps if s.get("id") == "meta")
    assert "type=raw,value=latest" in meta["with"]["tags"] and "type=semver" in meta["with"]["tags"]
