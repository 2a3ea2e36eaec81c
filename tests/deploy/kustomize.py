"""A render of kustomizations limited to the kustomize features deploy/kubernetes uses.

No kustomize binary installs from PyPI or Debian, so CI renders with this; where ``kubectl`` is
installed, tests/deploy/test_manifests.py checks that kubectl's embedded kustomize renders the
same objects. Supported: ``resources`` (files and kustomization directories), ``namespace``,
``labels`` (metadata only), ``configMapGenerator`` / ``secretGenerator`` (files, literals) with
``generatorOptions.disableNameSuffixHash``, ``replicas``, ``images`` and ``patches`` holding JSON
patches (RFC 6902) with a kind/name target. Anything else raises: an unsupported feature must
not render silently wrong.
"""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

Obj = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "configMapGenerator", "secretGenerator",
             "generatorOptions", "replicas", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass"}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet"}
POD_HOLDERS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Unsupported(ValueError):
    """The kustomization uses a feature this render does not implement."""


def key(obj: Obj) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def render(directory: Path) -> list[Obj]:
    """The objects ``kustomize build directory`` would print (in no particular order)."""
    directory = directory.resolve()
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)}")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render(path)
        else:
            # A copy per document: YAML anchors would share one dict between two places.
            objects += [copy.deepcopy(d) for d in yaml.safe_load_all(path.read_text()) if d]
    objects += _generated(directory, spec)
    _namespace(objects, spec.get("namespace"))
    _labels(objects, spec.get("labels", []))
    for patch in spec.get("patches", []):
        _patch(directory, objects, patch)
    _replicas(objects, spec.get("replicas", []))
    _images(objects, spec.get("images", []))
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        if key(obj) in seen:
            raise ValueError(f"{directory}: {key(obj)} defined twice")
        seen.add(key(obj))
    return objects


def _generated(directory: Path, spec: Obj) -> list[Obj]:
    generators = [("ConfigMap", g) for g in spec.get("configMapGenerator", [])]
    generators += [("Secret", g) for g in spec.get("secretGenerator", [])]
    if generators and not (spec.get("generatorOptions") or {}).get("disableNameSuffixHash"):
        raise Unsupported(f"{directory}: name suffix hashes are not implemented")
    out = []
    for kind, gen in generators:
        if set(gen) - {"name", "files", "literals"}:
            raise Unsupported(f"{directory}: generator keys {sorted(set(gen) - {'name', 'files', 'literals'})}")
        data: dict[str, str] = {}
        for item in gen.get("files", []):
            name, _, path = item.rpartition("=")
            data[name or Path(path).name] = (directory / path).read_text()
        for item in gen.get("literals", []):
            name, _, value = item.partition("=")
            data[name] = value
        obj: Obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
        if kind == "Secret":
            obj["type"] = "Opaque"
            data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        obj["data"] = data
        out.append(obj)
    return out


def _namespace(objects: list[Obj], namespace: str | None) -> None:
    if not namespace:
        return
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for subject in obj.get("subjects", []):
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = namespace


def _labels(objects: list[Obj], labels: list[Obj]) -> None:
    for entry in labels:
        if entry.get("includeSelectors") or entry.get("includeTemplates") or set(entry) - {"pairs"}:
            raise Unsupported(f"labels {entry}: only metadata labels are implemented")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])


def _targets(objects: list[Obj], target: Obj) -> list[Obj]:
    if set(target) - {"kind", "name"}:
        raise Unsupported(f"patch target {target}")
    return [o for o in objects if o["kind"] == target.get("kind", o["kind"])
            and re.fullmatch(target.get("name", ".*"), o["metadata"]["name"])]


def _patch(directory: Path, objects: list[Obj], patch: Obj) -> None:
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise Unsupported("strategic merge patches are not implemented")
    targets = _targets(objects, patch.get("target") or {})
    if not targets:
        raise ValueError(f"patch matches nothing: {patch.get('target')}")
    for obj in targets:
        patched = jsonpatch.JsonPatch(operations).apply(obj)
        obj.clear()
        obj.update(patched)


def _replicas(objects: list[Obj], replicas: list[Obj]) -> None:
    for entry in replicas:
        found = [o for o in objects if o["kind"] in SCALABLE and o["metadata"]["name"] == entry["name"]]
        if not found:
            raise ValueError(f"replicas: no workload named {entry['name']}")
        for obj in found:
            obj["spec"]["replicas"] = entry["count"]


def _images(objects: list[Obj], images: list[Obj]) -> None:
    for entry in images:
        if set(entry) - {"name", "newName", "newTag"}:
            raise Unsupported(f"images {entry}")
        for obj in objects:
            if obj["kind"] not in POD_HOLDERS:
                continue
            pod = obj["spec"]["template"]["spec"]
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name, _, tag = container["image"].partition(":")
                if name == entry["name"]:
                    container["image"] = f"{entry.get('newName', name)}:{entry.get('newTag', tag)}"
