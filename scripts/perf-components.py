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

COMP = [
 ("conversion (convert::)", r"openai_grpc_gateway::convert"),
 ("SSE decoder (sse::)", r"openai_grpc_gateway::sse"),
 ("upstream client (openai::)", r"openai_grpc_gateway::openai"),
 ("telemetry (metrics, spans)", r"openai_grpc_gateway::telemetry|prometheus_client|tracing"),
 ("call path (api::, owners, store)", r"openai_grpc_gateway::(api|owners|store|auth|quotas|server|web|error)"),
 ("serde_json", r"serde_json|serde_core"),
 ("prost / prost-reflect", r"prost"),
 ("h2 (both sides)", r"\bh2::"),
 ("hyper HTTP/1.1 client, reqwest", r"hyper::proto::h1|hyper_util::client|reqwest|hyper::client"),
 ("hyper server / tonic / tower layers", r"hyper::|hyper_util|tonic|tower|axum|http_body"),
 ("url / idna", r"\burl::|idna"),
 ("http types (HeaderMap...)", r"\bhttp::|httparse"),
 ("tokio runtime, timers, mpsc", r"tokio"),
]
def strip_generics(x):
    out=[];d=0
    for ch in x:
        if ch=='<': d+=1; continue
        if ch=='>': d=max(0,d-1); continue
        if d==0: out.append(ch)
    return ''.join(out)
def norm(fr):
    fr=fr.replace(' (inlined)','')
    fr=re.sub(r' \(/.*','',fr)
    if fr.startswith('<') and ' as ' in fr:
        fr=fr[1:fr.index(' as ')]
    return strip_generics(fr)
samples=[]; cur=None
for line in open(sys.argv[1]):
    if not line.startswith('\t') and line.strip():
        cur=[]; samples.append(cur); continue
    if line.startswith('\t') and cur is not None:
        parts=line.strip().split(' ',1)
        if len(parts)==2: cur.append(parts[1])
leaf=collections.Counter(); comp=collections.Counter(); kern_by=collections.Counter(); alloc_by=collections.Counter()
for s in samples:
    if not s: continue
    f0=s[0]
    if 'kernel' in f0: lk='kernel'
    elif re.search(r'\bmi_|_mi_|mimalloc',f0): lk='allocator'
    elif re.search(r'memmove|memcpy|memset|memcmp',f0): lk='memmove/memcmp'
    else: lk='user code'
    leaf[lk]+=1
    c='other'
    for fr in s:
        if 'kernel' in fr: continue
        fr=norm(fr)
        for name,pat in COMP:
            if re.search(pat,fr): c=name; break
        if c!='other': break
    comp[c]+=1
    if lk=='kernel': kern_by[c]+=1
    if lk=='allocator': alloc_by[c]+=1
n=sum(leaf.values())
print(f"{n} samples")
print("where the CPU is (leaf):")
for k,v in leaf.most_common(): print(f"  {k:40s} {100*v/n:5.1f} %")
print("on whose behalf (innermost component frame; kernel and allocator time charged to its caller):")
for k,v in comp.most_common(): print(f"  {k:40s} {100*v/n:5.1f} %   (kernel {100*kern_by[k]/n:4.1f}, allocator {100*alloc_by[k]/n:4.1f})")
