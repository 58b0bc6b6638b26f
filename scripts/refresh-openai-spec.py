#!/usr/bin/env python3
"""Regenerate spec/openai/snapshot.json from OpenAI's OpenAPI spec.

The snapshot is a trimmed, deterministic digest of the parts of
openai/openai-openapi that this gateway mirrors: the Responses API unions
(stream events, output items, input items, tools, tool_choice, content parts),
the request/response objects (CreateResponse, Response, CreateImageRequest,
CreateSpeechRequest), and the Responses/Conversations lifecycle endpoints with
the schemas they use.

Stdlib only: the input must be the spec's JSON rendering (openapi.json, which
openai/openai-openapi ships next to openapi.yaml with the same content). A
.yaml/.yml file is accepted only if PyYAML happens to be importable.

Usage:
    python3 scripts/refresh-openai-spec.py \
        --spec /path/to/openapi.json \
        --commit <40-hex sha of openai/openai-openapi> \
        --commit-date <commit date, e.g. 2026-08-21T20:48:10Z> \
        [--out spec/openai/snapshot.json] [--file-name openapi.json]

Output: JSON with sorted keys, 2-space indent, UTF-8, trailing newline. The
same input always yields the same bytes.

Per-property record (used everywhere a "properties" map appears):
    type        short type summary ("string | null", "array<InputItem>",
                "map<string>", a schema name for a $ref, ...)
    required    bool (from the flattened "required" list)
    enum        known values, gathered through $ref/anyOf/oneOf of scalar schemas
    enum_open   true when a plain-string branch sits next to the enum
                ("string or one of these")
    items_enum  known values of array items
    const, default, minimum, maximum, exclusiveMinimum, exclusiveMaximum,
    minLength, maxLength, pattern, minItems, maxItems, maxProperties, format
                copied when present (found through scalar branches as well)
    nullable    true when a null branch or `nullable: true` is present
    deprecated  true when marked deprecated
    defined_in  for allOf-flattened objects: the schemas declaring the property,
                in allOf order (the last one supplies the details shown)
    properties  for inline (unnamed) object schemas: nested property records
    inline_objects  when several inline object branches exist: a list of them
    items_properties  nested records for inline array-item objects
"""

import argparse
import json
import os
import sys

SOURCE_REPO = "openai/openai-openapi"
GENERATOR = "scripts/refresh-openai-spec.py"

# Unions to expand (members resolved through $ref and nested unions).
UNIONS = [
    "ResponseStreamEvent",
    "OutputItem",
    "InputItem",
    "Item",
    "ItemResource",
    "ItemField",
    "ConversationItem",
    "Tool",
    "ToolChoiceParam",
    "InputContent",
    "OutputContent",
    "OutputMessageContent",
    "Annotation",
]

# Objects whose (allOf-flattened) properties are listed.
OBJECTS = [
    "CreateResponse",
    "Response",
    "CreateImageRequest",
    "CreateSpeechRequest",
]

# Endpoints (all methods of each path).
ENDPOINTS = [
    "/responses",
    "/responses/{response_id}",
    "/responses/{response_id}/cancel",
    "/responses/{response_id}/input_items",
    "/responses/input_tokens",
    "/responses/compact",
    "/conversations",
    "/conversations/{conversation_id}",
    "/conversations/{conversation_id}/items",
    "/conversations/{conversation_id}/items/{item_id}",
    "/images/generations",
    "/audio/speech",
]

HTTP_METHODS = ["get", "put", "post", "delete", "patch", "head", "options"]

# Extra named schemas to describe in the "schemas" section besides the ones
# referenced by the endpoints (nested request objects the gateway maps).
EXTRA_SCHEMAS = [
    "Reasoning",
    "ResponseStreamOptions",
    "ResponseTextParam",
    "TextResponseFormatConfiguration",
    "Prompt",
    "ConversationParam",
    "ResponseConversation",
    "ContextManagementParam",
    "ModerationParam",
    "Moderation",
    "PromptCacheOptionsParam",
    "PromptCacheOptions",
    "PromptCacheBreakpointConfig",
    "ResponseUsage",
    "ResponseError",
    "IncludeEnum",
    "Metadata",
    "MessagePhase",
    "ImageDetail",
    "ServiceTierResponses",
    "ReasoningEffort",
    "ReasoningModeEnum",
    "VoiceIdsOrCustomVoice",
    "VoiceIdsShared",
    "PartialImages",
    "InputMessageContentList",
    "FunctionAndCustomToolCallOutput",
    "Error",
    "ErrorResponse",
]

COPY_KEYS = [
    "const",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "format",
]


class Spec:
    def __init__(self, doc):
        self.doc = doc
        self.schemas = doc.get("components", {}).get("schemas", {})

    # -- references -------------------------------------------------------

    @staticmethod
    def ref_name(ref):
        return ref.rsplit("/", 1)[-1]

    def lookup(self, ref):
        if not ref.startswith("#/"):
            raise ValueError("external $ref not supported: %s" % ref)
        node = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[part]
        return node

    def deref(self, node, seen=None):
        """Follow a $ref chain; returns (name or None, target node)."""
        name = None
        seen = set() if seen is None else seen
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                break
            seen.add(ref)
            name = self.ref_name(ref)
            node = self.lookup(ref)
        return name, node

    # -- classification ---------------------------------------------------

    @staticmethod
    def branches(node):
        return list(node.get("oneOf", [])) + list(node.get("anyOf", []))

    def is_union(self, node):
        return (
            isinstance(node, dict)
            and ("oneOf" in node or "anyOf" in node)
            and "properties" not in node
            and "allOf" not in node
        )

    def is_objectish(self, node, seen=None):
        """True if the schema describes an object with properties (or allOf)."""
        seen = set() if seen is None else seen
        if not isinstance(node, dict):
            return False
        if "$ref" in node:
            if node["$ref"] in seen:
                return False
            seen.add(node["$ref"])
            return self.is_objectish(self.lookup(node["$ref"]), seen)
        if "properties" in node or "allOf" in node:
            return True
        return False

    # -- type summary -----------------------------------------------------

    def tsum(self, node, depth=0):
        if depth > 12:
            return "..."
        if node is True or node == {}:
            return "any"
        if not isinstance(node, dict):
            return "any"
        if "$ref" in node:
            return self.ref_name(node["$ref"])
        if "$recursiveRef" in node:
            return "recursive"
        parts = []
        if "oneOf" in node or "anyOf" in node:
            for b in self.branches(node):
                parts.append(self.tsum(b, depth + 1))
        elif "allOf" in node:
            subs = [self.tsum(b, depth + 1) for b in node["allOf"]]
            parts.append(subs[0] if len(subs) == 1 else "allOf(" + " & ".join(subs) + ")")
        else:
            t = node.get("type")
            types = t if isinstance(t, list) else ([t] if t else [])
            if not types:
                if "properties" in node:
                    types = ["object"]
                elif "items" in node:
                    types = ["array"]
                elif "const" in node:
                    types = [type_of_value(node["const"])]
                elif "enum" in node:
                    types = sorted({type_of_value(v) for v in node["enum"]})
            if not types:
                parts.append("any")
            for ty in types:
                if ty == "array":
                    items = node.get("items")
                    parts.append("array<%s>" % (self.tsum(items, depth + 1) if items is not None else "any"))
                elif ty == "object":
                    ap = node.get("additionalProperties")
                    if "properties" in node:
                        parts.append("object")
                    elif isinstance(ap, dict) and ap:
                        parts.append("map<%s>" % self.tsum(ap, depth + 1))
                    elif ap is True or ap == {}:
                        parts.append("map<any>")
                    else:
                        parts.append("object")
                else:
                    parts.append(ty)
        if node.get("nullable") is True:
            parts.append("null")
        out = []
        for p in parts:
            for q in p.split(" | "):
                if q not in out:
                    out.append(q)
        return " | ".join(out)

    # -- scalar facts gathered through compositions -----------------------

    def scalar_walk(self, node, visit, seen, depth=0):
        """Visit node and the scalar branches reachable through $ref/anyOf/oneOf/allOf.

        Does not enter object properties or array items; follows a $ref only when
        the target is not an object with properties.
        """
        if depth > 12 or not isinstance(node, dict):
            return
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                return
            target = self.lookup(ref)
            # annotations that sit next to the $ref (OpenAPI 3.1)
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if siblings:
                visit(siblings)
            if self.is_objectish(target):
                return
            self.scalar_walk(target, visit, seen | {ref}, depth + 1)
            return
        visit(node)
        for b in self.branches(node):
            self.scalar_walk(b, visit, seen, depth + 1)
        for b in node.get("allOf", []):
            self.scalar_walk(b, visit, seen, depth + 1)

    def scalar_facts(self, node):
        facts = {}
        enum_vals = []
        state = {"open": False, "nullable": False, "deprecated": False}

        def visit(n):
            if n.get("deprecated") is True:
                state["deprecated"] = True
            if n.get("nullable") is True:
                state["nullable"] = True
            t = n.get("type")
            types = t if isinstance(t, list) else ([t] if t else [])
            if "null" in types:
                state["nullable"] = True
            if "enum" in n:
                for v in n["enum"]:
                    if v is None:
                        state["nullable"] = True
                    elif v not in enum_vals:
                        enum_vals.append(v)
            elif "const" not in n and "string" in types and not self.branches(n):
                state["open"] = True
            for k in COPY_KEYS:
                if k in n and k not in facts:
                    facts[k] = n[k]
            if "const" in n and n["const"] not in enum_vals:
                enum_vals.append(n["const"])

        self.scalar_walk(node, visit, set())
        if enum_vals:
            facts["enum"] = enum_vals
            if state["open"]:
                facts["enum_open"] = True
        if state["nullable"]:
            facts["nullable"] = True
        if state["deprecated"]:
            facts["deprecated"] = True
        return facts

    def inline_objects(self, node, depth=0):
        """Inline (unnamed) object schemas reachable through compositions."""
        found = []
        if depth > 12 or not isinstance(node, dict) or "$ref" in node:
            return found
        if "properties" in node:
            found.append(node)
            return found
        for b in self.branches(node) + list(node.get("allOf", [])):
            found.extend(self.inline_objects(b, depth + 1))
        return found

    def array_items(self, node, depth=0):
        """Array item schemas reachable through compositions (not through $ref)."""
        found = []
        if depth > 12 or not isinstance(node, dict):
            return found
        if "$ref" in node:
            _, target = self.deref(node)
            if self.is_objectish(target) or depth > 6:
                return found
            return self.array_items(target, depth + 1)
        t = node.get("type")
        types = t if isinstance(t, list) else ([t] if t else [])
        if "array" in types or ("items" in node and not types):
            if "items" in node:
                found.append(node["items"])
        for b in self.branches(node) + list(node.get("allOf", [])):
            found.extend(self.array_items(b, depth + 1))
        return found

    # -- properties -------------------------------------------------------

    def prop_record(self, pnode, required, depth=0):
        rec = {"type": self.tsum(pnode), "required": bool(required)}
        rec.update(self.scalar_facts(pnode))
        items = self.array_items(pnode)
        item_enum = []
        item_objs = []
        for it in items:
            f = self.scalar_facts(it)
            for v in f.get("enum", []):
                if v not in item_enum:
                    item_enum.append(v)
            item_objs.extend(self.inline_objects(it))
        if item_enum:
            rec["items_enum"] = item_enum
        if depth < 4:
            objs = self.inline_objects(pnode)
            if len(objs) == 1:
                rec["properties"] = self.props_of(objs[0], depth + 1)[0]
            elif len(objs) > 1:
                rec["inline_objects"] = [
                    {"properties": self.props_of(o, depth + 1)[0]} for o in objs
                ]
            if len(item_objs) == 1:
                rec["items_properties"] = self.props_of(item_objs[0], depth + 1)[0]
        return rec

    def flatten(self, node, name=None, seen=None):
        """allOf-flatten an object schema.

        Returns (ordered list of (prop_name, prop_node, [definers])), required set).
        """
        seen = set() if seen is None else seen
        if isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                return [], set()
            n, target = self.deref(node)
            return self.flatten(target, n, seen | {ref})
        props = {}
        order = []
        required = set()

        def add(pname, pnode, definer):
            if pname not in props:
                order.append(pname)
                props[pname] = [pnode, []]
            props[pname][0] = pnode
            if definer not in props[pname][1]:
                props[pname][1].append(definer)

        for part in node.get("allOf", []):
            sub, req = self.flatten(part, None, seen)
            sub_name = self.ref_name(part["$ref"]) if "$ref" in part else name
            for pname, pnode, definers in sub:
                for d in definers:
                    add(pname, pnode, d if d is not None else sub_name)
            required |= req
        for pname, pnode in node.get("properties", {}).items():
            add(pname, pnode, name)
        required |= set(node.get("required", []))
        return [(p, props[p][0], props[p][1]) for p in order], required

    def props_of(self, node, depth=0, name=None, with_definers=False):
        flat, required = self.flatten(node, name)
        out = {}
        for pname, pnode, definers in flat:
            rec = self.prop_record(pnode, pname in required, depth)
            if with_definers and len([d for d in definers if d]) > 0:
                rec["defined_in"] = [d if d else "(inline)" for d in definers]
            out[pname] = rec
        return out, sorted(required)

    # -- unions -----------------------------------------------------------

    def union_members(self, node, via, seen, out, names):
        for i, b in enumerate(self.branches(node)):
            if "$ref" in b:
                ref = b["$ref"]
                if ref in seen:
                    continue
                mname, target = self.deref(b)
                if self.is_union(target):
                    self.union_members(target, via + [mname], seen | {ref}, out, names)
                    continue
                if mname in names:
                    continue
                names.add(mname)
                out.append(self.member_record(mname, target, via, b))
            else:
                if self.is_union(b):
                    self.union_members(b, via + ["(inline #%d)" % i], seen, out, names)
                    continue
                label = "(inline #%d%s)" % (i, (" in " + via[-1]) if via else "")
                out.append(self.member_record(label, b, via, b))

    def type_values(self, props_flat):
        for pname, pnode, _ in props_flat:
            if pname != "type":
                continue
            facts = self.scalar_facts(pnode)
            if "enum" in facts:
                return facts["enum"]
            if "default" in facts:
                return [facts["default"]]
        return []

    def member_record(self, mname, target, via, ref_node):
        rec = {"schema": mname}
        if via:
            rec["via"] = via
        if isinstance(ref_node, dict) and ref_node.get("deprecated") is True:
            rec["deprecated"] = True
        if target.get("deprecated") is True:
            rec["deprecated"] = True
        if self.is_objectish(target):
            flat, _ = self.flatten(target, mname)
            tv = self.type_values(flat)
            if tv:
                rec["type_values"] = tv
            rec["properties"], _ = self.props_of(target, 0, mname)
        else:
            rec["kind"] = self.tsum(target)
            rec.update({k: v for k, v in self.scalar_facts(target).items() if k != "deprecated"})
        return rec

    def union(self, name):
        node = self.schemas[name]
        out = []
        self.union_members(node, [], {"#/components/schemas/" + name}, out, set())
        rec = {
            "composition": "oneOf" if "oneOf" in node else "anyOf",
            "members": out,
        }
        disc = node.get("discriminator", {}).get("propertyName")
        if disc:
            rec["discriminator"] = disc
        return rec

    # -- named schema (any shape) -----------------------------------------

    def describe(self, name):
        node = self.schemas[name]
        if self.is_objectish(node):
            props, required = self.props_of(node, 0, name, with_definers="allOf" in node)
            rec = {"kind": "object", "properties": props}
            if node.get("additionalProperties") is False:
                rec["additionalProperties"] = False
            return rec
        if self.is_union(node):
            members = []
            self.union_members(node, [], {"#/components/schemas/" + name}, members, set())
            if all("properties" not in m for m in members):
                # a scalar union (enum / string-or-enum / string-or-object)
                rec = {"kind": self.tsum(node)}
                rec.update(self.scalar_facts(node))
                rec["members"] = members
                return rec
            # Named members are described under their own name in "schemas";
            # keep only inline members in full here.
            for m in members:
                if not m["schema"].startswith("("):
                    m.pop("properties", None)
            return {"kind": "union", "type": self.tsum(node), "members": members}
        rec = {"kind": self.tsum(node)}
        rec.update(self.scalar_facts(node))
        return rec

    # -- endpoints --------------------------------------------------------

    def param_record(self, p):
        _, p = self.deref(p)
        schema = p.get("schema", {})
        rec = {
            "name": p["name"],
            "in": p["in"],
            "required": bool(p.get("required", False)),
            "type": self.tsum(schema),
        }
        rec.update(self.scalar_facts(schema))
        items = self.array_items(schema)
        ie = []
        for it in items:
            for v in self.scalar_facts(it).get("enum", []):
                if v not in ie:
                    ie.append(v)
        if ie:
            rec["items_enum"] = ie
        if p.get("description"):
            rec["description"] = p["description"].strip()
        return rec

    def body_record(self, content, referenced):
        out = {"content_types": sorted(content.keys())}
        schemas = {}
        for ctype in sorted(content.keys()):
            sch = content[ctype].get("schema")
            if sch is None:
                continue
            if "$ref" in sch:
                n = self.ref_name(sch["$ref"])
                schemas[ctype] = n
                referenced.add(n)
            else:
                schemas[ctype] = "(inline)"
                if self.is_objectish(sch):
                    props, _ = self.props_of(sch)
                    out.setdefault("inline_properties", {})[ctype] = props
                else:
                    out.setdefault("inline_type", {})[ctype] = self.tsum(sch)
        out["schema"] = schemas
        return out

    def endpoint(self, path, referenced):
        item = self.doc["paths"][path]
        common = item.get("parameters", [])
        rec = {}
        for m in HTTP_METHODS:
            if m not in item:
                continue
            op = item[m]
            r = {"operationId": op.get("operationId")}
            params = [self.param_record(p) for p in common + op.get("parameters", [])]
            r["parameters"] = params
            rb = op.get("requestBody")
            if rb is not None:
                _, rb = self.deref(rb)
                body = self.body_record(rb.get("content", {}), referenced)
                body["required"] = bool(rb.get("required", False))
                r["request_body"] = body
            else:
                r["request_body"] = None
            responses = {}
            for code in sorted(op.get("responses", {}).keys()):
                resp = op["responses"][code]
                resp_name = None
                if "$ref" in resp:
                    resp_name, resp = self.deref(resp)
                if resp_name:
                    responses[code] = {"ref": resp_name}
                    continue
                content = resp.get("content")
                if not content:
                    responses[code] = {"content_types": [], "schema": {}}
                    continue
                responses[code] = self.body_record(content, referenced)
            r["responses"] = responses
            rec[m] = r
        return rec

    def beta_variants(self):
        out = {}
        for path in sorted(self.doc["paths"]):
            if "?beta=" not in path:
                continue
            item = self.doc["paths"][path]
            rec = {}
            for m in HTTP_METHODS:
                if m not in item:
                    continue
                op = item[m]
                headers = [
                    self.param_record(p)
                    for p in op.get("parameters", [])
                    if self.deref(p)[1].get("in") == "header"
                ]
                refs = set()
                self.body_record(
                    self.deref(op["requestBody"])[1].get("content", {}) if "requestBody" in op else {},
                    refs,
                )
                ok = op.get("responses", {}).get("200", {})
                self.body_record(ok.get("content", {}), refs)
                for h in headers:
                    h.pop("description", None)
                rec[m] = {
                    "operationId": op.get("operationId"),
                    "header_parameters": headers,
                    "schemas": sorted(refs),
                }
            out[path] = rec
        return out


def collect_refs(node, acc):
    """Names of the component schemas referenced anywhere under node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/components/schemas/"):
                acc.add(v.rsplit("/", 1)[-1])
            elif k in ("example", "examples", "x-oaiMeta"):
                continue
            else:
                collect_refs(v, acc)
    elif isinstance(node, list):
        for x in node:
            collect_refs(x, acc)


def type_of_value(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "null"
    return "any"


def load_spec(path):
    with open(path, "r", encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore
        except ImportError:
            sys.exit("PyYAML is not installed; pass the spec's openapi.json instead")
        return yaml.safe_load(text)
    return json.loads(text)


def build(doc, commit, commit_date, file_name):
    spec = Spec(doc)
    missing = [n for n in UNIONS + OBJECTS + EXTRA_SCHEMAS if n not in spec.schemas]
    if missing:
        sys.exit("schemas missing from spec: %s" % ", ".join(missing))

    unions = {n: spec.union(n) for n in UNIONS}

    objects = {}
    for n in OBJECTS:
        node = spec.schemas[n]
        props, _ = spec.props_of(node, 0, n, with_definers="allOf" in node)
        rec = {"properties": props}
        if "allOf" in node:
            rec["composed_of"] = [
                spec.ref_name(p["$ref"]) if "$ref" in p else "(inline)" for p in node["allOf"]
            ]
        if node.get("additionalProperties") is False:
            rec["additionalProperties"] = False
        objects[n] = rec

    referenced = set()
    endpoints = {}
    for path in ENDPOINTS:
        if path not in doc.get("paths", {}):
            sys.exit("path missing from spec: %s" % path)
        endpoints[path] = spec.endpoint(path, referenced)

    # Where each union member is already described in full.
    member_home = {}
    for uname in UNIONS:
        for m in unions[uname]["members"]:
            if not m["schema"].startswith("(") and m["schema"] not in member_home:
                member_home[m["schema"]] = "unions." + uname

    # Every named schema reachable from what is listed above, so the snapshot
    # is self-contained.
    roots = set(UNIONS) | set(OBJECTS) | set(member_home) | referenced | set(EXTRA_SCHEMAS)
    closure = set()
    stack = sorted(roots)
    while stack:
        n = stack.pop()
        if n in closure:
            continue
        closure.add(n)
        found = set()
        collect_refs(spec.schemas[n], found)
        stack.extend(sorted(found - closure))

    schemas = {}
    for n in sorted(closure):
        if n in unions:
            schemas[n] = {"see": "unions." + n}
        elif n in objects:
            schemas[n] = {"see": "objects." + n}
        elif n in member_home:
            schemas[n] = {"see": member_home[n]}
        else:
            schemas[n] = spec.describe(n)

    info = doc.get("info", {})
    return {
        "header": {
            "source": SOURCE_REPO,
            "file": file_name,
            "commit": commit,
            "commit_date": commit_date,
            "generated_by": GENERATOR,
        },
        "spec_info": {
            "openapi": doc.get("openapi"),
            "version": info.get("version"),
        },
        "unions": unions,
        "objects": objects,
        "endpoints": endpoints,
        "schemas": schemas,
        "beta_variants": spec.beta_variants(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--spec", required=True, help="local openapi.json (or .yaml with PyYAML)")
    ap.add_argument("--commit", required=True, help="full 40-hex commit of openai/openai-openapi")
    ap.add_argument("--commit-date", required=True, help="commit date (ISO 8601)")
    ap.add_argument("--out", default="spec/openai/snapshot.json")
    ap.add_argument("--file-name", default=None, help="file name recorded in the header (default: basename of --spec)")
    args = ap.parse_args(argv)

    commit = args.commit.strip().lower()
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        sys.exit("--commit must be a full 40-hex sha")
    doc = load_spec(args.spec)
    snap = build(doc, commit, args.commit_date.strip(), args.file_name or os.path.basename(args.spec))
    text = json.dumps(snap, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    print("wrote %s (%d bytes)" % (args.out, len(text.encode("utf-8"))))


if __name__ == "__main__":
    main()
