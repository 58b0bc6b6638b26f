#!/usr/bin/env python3
"""CPU samples of the gateway by component (BENCHMARKS.md, "Where a unary call's CPU goes").

Reads `perf script -F comm,tid,ip,sym,dso` output of a `perf record --call-graph dwarf` profile
and charges each sample to the innermost component on its stack (matching each frame's own
path, not its type parameters), with the kernel and allocator time under it:

    perf record -F 700 --call-graph dwarf,16384 -p <gateway pid> -o perf.data -- sleep 4
    perf script -i perf.data -F comm,tid,ip,sym,dso > stacks.txt
    scripts/perf-components.py stacks.txt
"""
import collections
import re
import sys

# (component, pattern on a frame's own path); the first match wins, so narrower ones come first.
COMPONENTS = [
    ("conversion (convert::)", r"openai_grpc_gateway::convert"),
    ("SSE decoder (sse::)", r"openai_grpc_gateway::sse"),
    ("upstream client (openai::)", r"openai_grpc_gateway::openai"),
    ("telemetry (metrics, spans)", r"openai_grpc_gateway::telemetry|prometheus_client|tracing"),
    ("call path (api::, owners, store)",
     r"openai_grpc_gateway::(api|owners|store|auth|quotas|server|web|error)"),
    ("serde_json", r"serde_json|serde_core"),
    ("prost / prost-reflect", r"prost"),
    ("h2 (both sides)", r"\bh2::"),
    ("hyper HTTP/1.1 client, reqwest", r"hyper::proto::h1|hyper_util::client|reqwest|hyper::client"),
    ("hyper server / tonic / tower layers", r"hyper::|hyper_util|tonic|tower|axum|http_body"),
    ("url / idna", r"\burl::|idna"),
    ("http types (HeaderMap...)", r"\bhttp::|httparse"),
    ("tokio runtime, timers, mpsc", r"tokio"),
]


def without_generics(name):
    """`a::b<X<Y>>::c` -> `a::b::c`."""
    out, depth = [], 0
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def own_path(frame):
    """A frame's function path: for `<T as Trait>::f` the path of T, without type parameters."""
    frame = re.sub(r" \(/.*", "", frame.replace(" (inlined)", ""))
    if frame.startswith("<") and " as " in frame:
        frame = frame[1:frame.index(" as ")]
    return without_generics(frame)


def read_samples(path):
    """Each sample's frames, innermost first (symbol and object file)."""
    samples = []
    for line in open(path):
        if line.startswith("\t"):
            parts = line.strip().split(" ", 1)
            if samples and len(parts) == 2:
                samples[-1].append(parts[1])
        elif line.strip():
            samples.append([])
    return [s for s in samples if s]


def leaf_kind(frame):
    if "kernel" in frame:
        return "kernel"
    if re.search(r"\bmi_|_mi_|mimalloc", frame):
        return "allocator"
    if re.search(r"memmove|memcpy|memset|memcmp", frame):
        return "memmove/memcmp"
    return "user code"


def component(frames):
    for frame in frames:
        if "kernel" in frame:
            continue
        path = own_path(frame)
        for name, pattern in COMPONENTS:
            if re.search(pattern, path):
                return name
    return "other"


def main():
    samples = read_samples(sys.argv[1])
    leaf, comp = collections.Counter(), collections.Counter()
    kernel_by, alloc_by = collections.Counter(), collections.Counter()
    for frames in samples:
        kind, name = leaf_kind(frames[0]), component(frames)
        leaf[kind] += 1
        comp[name] += 1
        kernel_by[name] += kind == "kernel"
        alloc_by[name] += kind == "allocator"
    n = max(1, len(samples))
    print(f"{len(samples)} samples")
    print("where the CPU is (leaf):")
    for kind, count in leaf.most_common():
        print(f"  {kind:40s} {100 * count / n:5.1f} %")
    print("on whose behalf (innermost component; kernel and allocator time charged to it):")
    for name, count in comp.most_common():
        print(f"  {name:40s} {100 * count / n:5.1f} %   "
              f"(kernel {100 * kernel_by[name] / n:4.1f}, allocator {100 * alloc_by[name] / n:4.1f})")


if __name__ == "__main__":
    main()
