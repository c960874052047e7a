"""Render deploy/k8s/values.yaml into Kubernetes manifests (stdout, or the file given).

    python deploy/k8s/render.py                    # print
    python deploy/k8s/render.py deploy/k8s/manifests.yaml

Plain dictionaries dumped as YAML: no template language, so what a value does is readable here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
UID = 10001  # the image's dagster user (Dockerfile)
APP = "ml-connector-webhooks"


class _Dumper(yaml.SafeDumper):
    """No &anchors/*aliases for shared dicts: every manifest reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _receiver_container(values: dict[str, Any]) -> dict[str, Any]:
    receiver = values["receiver"]
    image = values["image"]
    probe = {"httpGet": {"path": "/webhooks/health", "port": "http"}, "timeoutSeconds": 5}
    return {
        "name": "webhooks",
        "image": f"{image['repository']}:{image['tag']}",
        "imagePullPolicy": image["pullPolicy"],
        "command": [
            "ml-connector",
            "webhooks",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(receiver["port"]),
        ],
        "ports": [{"name": "http", "containerPort": receiver["port"]}],
        "env": [{"name": "ML_CONNECTOR_ROLE", "value": "webhooks"}],
        "envFrom": [{"secretRef": {"name": values["secretName"]}}],
        "readinessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3, "initialDelaySeconds": 10},
        "resources": receiver["resources"],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    namespace = values["namespace"]
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "ml-connector"}
    meta = {"name": APP, "namespace": namespace, "labels": labels}
    storage = values["storage"]
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": storage["size"]}},
    }
    if storage["storageClassName"]:
        claim["storageClassName"] = storage["storageClassName"]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": values["receiver"]["replicas"],
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID},
                        "containers": [_receiver_container(values)],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": values["receiver"]["servicePort"], "targetPort": "http"}],
            },
        },
        {
            # Keeps all but one receiver up through node drains: webhooks keep landing.
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": storage["claimName"], "namespace": namespace},
            "spec": claim,
        },
    ]


def main(argv: list[str]) -> int:
    values = yaml.safe_load((HERE / "values.yaml").read_text())
    text = "# Rendered by deploy/k8s/render.py from deploy/k8s/values.yaml: edit those, not this file.\n"
    text += yaml.dump_all(render(values), Dumper=_Dumper, sort_keys=False)
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
