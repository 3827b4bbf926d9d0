#!/usr/bin/env python3
"""Generate src/apiserver/protobuf/table.rs: the protobuf wire schema of the
built-in Kubernetes kinds, keyed to their JSON field names.

Inputs (all read-only):
  --k8s-pb DIR        the k8s-pb crate's src/ (prost structs: field numbers and
                      wire types, generated from upstream generated.proto)
  --api DIR           a checkout of k8s.io/api
  --apimachinery DIR  a checkout of k8s.io/apimachinery
  --apiextensions DIR a checkout of k8s.io/apiextensions-apiserver

The Go struct tags of the upstream types give, per protobuf field number, the
JSON name, `omitempty`, pointer-ness and inlining; those decide how a decoded
field is rendered. k8s-pb gives the protobuf message type of every field.

Usage:
  python3 scripts/gen-proto-table.py --k8s-pb ~/.cargo/registry/src/*/k8s-pb-0.9.0/src \\
      --api ../api --apimachinery ../apimachinery \\
      --apiextensions ../apiextensions-apiserver > src/apiserver/protobuf/table.rs
  rustfmt --edition 2021 src/apiserver/protobuf/table.rs
"""

import argparse
import os
import re
import sys

# Modules of k8s-pb whose messages go into the table (GA versions plus the
# apimachinery types they reference).
API_VERSIONS = ("v1", "v2")
EXTRA_MODULES = [
    "apiextensions_apiserver.pkg.apis.apiextensions.v1",
    "apimachinery.pkg.apis.meta.v1",
    "apimachinery.pkg.runtime",
    "apimachinery.pkg.util.intstr",
    "apimachinery.pkg.api.resource",
]

SPECIALS = {
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.Json": "RawJson",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrArray": "OrArray",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrBool": "OrBool",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaPropsOrStringArray": "OrStringArray",
}

SCALARS = {"string": "Str", "bool": "Bool", "int32": "I32", "int64": "I64",
           "double": "F64", "bytes": "Bytes"}


def display_name(key):
    if key.startswith("apiextensions_apiserver."):
        return "io.k8s.apiextensions-apiserver." + key[len("apiextensions_apiserver."):]
    return "io.k8s." + key


def norm(name):
    return name.replace("_", "").lower()


def parse_prost_module(path, module):
    """Yield (message key, [(tag, rust name, attr, rust type)])."""
    text = open(path, encoding="utf-8").read()
    out = []
    for m in re.finditer(r"^pub struct (\w+) \{(?:\}|\n(.*?)^\})", text, re.M | re.S):
        name, body = m.group(1), m.group(2) or ""
        fields = []
        pat = re.compile(r"#\[prost\((.*?)\)\]\s*pub (?:r#)?(\w+):\s*(.*?),\n(?=\s*(?:///|#\[|$))", re.S)
        for f in pat.finditer(body + "\n"):
            attr, fname, ftype = f.group(1), f.group(2), re.sub(r"\s+", "", f.group(3))
            tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
            fields.append((tag, fname, attr, ftype))
        out.append((module + "." + name, fields))
    return out


def resolve_type(module, ftype):
    """Resolve the message type path in a prost field type to a message key."""
    paths = re.findall(r"(?:super::|[A-Za-z_]\w*::)*[A-Z]\w*", ftype)
    paths = [p for p in paths if p.split("::")[-1] not in ("Option", "Vec", "Box", "BTreeMap", "String")]
    if not paths:
        raise SystemExit("no message type in " + ftype)
    parts = paths[-1].split("::")
    mod = module.split(".")
    while parts and parts[0] == "super":
        mod.pop()
        parts.pop(0)
    return ".".join(mod + parts)


def go_dir(args, module):
    parts = module.split(".")
    if parts[0] == "api":
        return os.path.join(args.api, *parts[1:])
    if parts[0] == "apimachinery":
        return os.path.join(args.apimachinery, *parts[1:])
    return os.path.join(args.apiextensions, *parts[1:])


TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go_package(directory):
    """Return ({lower struct name: {tag: info}}, kinds, group name, slice types)."""
    structs, kinds, group, slices = {}, [], None, set()
    if not os.path.isdir(directory):
        return structs, kinds, group, slices
    for fn in sorted(os.listdir(directory)):
        if not fn.endswith(".go") or fn.endswith("_test.go"):
            continue
        text = open(os.path.join(directory, fn), encoding="utf-8").read()
        g = re.search(r'^const GroupName = "([^"]*)"', text, re.M)
        if g:
            group = g.group(1)
        for s in re.finditer(r"^type (\w+) \[\]string$", text, re.M):
            slices.add(s.group(1).lower())
        for s in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.M | re.S):
            name, body = s.group(1), s.group(2)
            fields, order, is_kind = {}, 0, False
            for line in body.split("\n"):
                line = line.strip()
                if not line or line.startswith("//"):
                    continue
                m = re.match(r"^(\w+)\s+([^\s`]+)\s+`([^`]*)`", line)
                embedded = False
                if m:
                    gotype, tags = m.group(2), m.group(3)
                else:
                    m = re.match(r"^([^\s`]+)\s+`([^`]*)`", line)
                    if not m:
                        continue
                    embedded, gotype, tags = True, m.group(1), m.group(2)
                if embedded and gotype.split(".")[-1] == "TypeMeta":
                    is_kind = True
                tagmap = dict(TAG_RE.findall(tags))
                pb = tagmap.get("protobuf")
                if not pb or pb == "-" or "," not in pb:
                    continue
                number = int(pb.split(",")[1])
                jparts = tagmap.get("json", "").split(",")
                fields[number] = {
                    "json": jparts[0],
                    "omitempty": "omitempty" in jparts[1:],
                    "pointer": gotype.startswith("*"),
                    "inline": embedded and jparts[0] == "",
                    "order": order,
                }
                order += 1
            structs[name.lower()] = fields
            if is_kind:
                kinds.append(name)
    return structs, kinds, group, slices


def lower_camel(rust_name):
    head, *rest = rust_name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main():
    ap = argparse.ArgumentParser()
    for a in ("--k8s-pb", "--api", "--apimachinery", "--apiextensions"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()

    modules = []
    for root, _dirs, files in os.walk(args.k8s_pb):
        if "mod.rs" not in files:
            continue
        rel = os.path.relpath(root, args.k8s_pb).replace(os.sep, ".")
        parts = rel.split(".")
        if (parts[0] == "api" and len(parts) == 3 and parts[2] in API_VERSIONS) or rel in EXTRA_MODULES:
            modules.append(rel)
    modules.sort()

    messages, go_info, kinds, warnings = {}, {}, [], []
    for module in modules:
        structs, mkinds, group, slices = parse_go_package(go_dir(args, module))
        for key, fields in parse_prost_module(os.path.join(args.k8s_pb, *module.split("."), "mod.rs"), module):
            messages[key] = fields
            go_info[key] = structs.get(norm(key.split(".")[-1]))
            if go_info[key] is None and key not in SPECIALS:
                warnings.append("no Go struct for " + key)
            if norm(key.split(".")[-1]) in slices:
                SPECIALS[key] = "StringList"
        if group is not None:
            version = module.split(".")[-1]
            api_version = version if group == "" else group + "/" + version
            for k in mkinds:
                key = module + "." + k
                match = [m for m in messages if m.startswith(module + ".") and norm(m.split(".")[-1]) == norm(k)]
                if match:
                    kinds.append((api_version, k, match[0]))

    keys = sorted(messages, key=display_name)
    index = {k: i for i, k in enumerate(keys)}
    out = []
    out.append("// @generated by scripts/gen-proto-table.py from the k8s-pb crate (field numbers,")
    out.append("// wire types) and the upstream Go types (JSON names, omitempty, pointers). Do not edit.")
    out.append("// Regenerate: python3 scripts/gen-proto-table.py --k8s-pb <k8s-pb-0.9.0/src> \\")
    out.append("//   --api <k8s.io/api> --apimachinery <k8s.io/apimachinery> \\")
    out.append("//   --apiextensions <k8s.io/apiextensions-apiserver> > src/apiserver/protobuf/table.rs")
    out.append("//   && rustfmt --edition 2021 src/apiserver/protobuf/table.rs")
    out.append("")
    out.append("use super::schema::{Field, Kind::*, Msg, Special, INLINE, KEEP, REP, SKIP};")
    out.append("")
    out.append("const fn f(tag: u32, json: &'static str, kind: super::schema::Kind, flags: u8) -> Field {")
    out.append("    Field { tag, json, kind, flags }")
    out.append("}")
    out.append("")
    out.append("pub static MESSAGES: &[Msg] = &[")
    for key in keys:
        special = SPECIALS.get(key, "None")
        go = go_info.get(key) or {}
        rows = []
        for tag, rname, attr, ftype in messages[key]:
            info = go.get(tag)
            flags = []
            kind_word = attr.split(",")[0].strip()
            if kind_word.startswith("btree_map"):
                kt, vt = [x.strip() for x in re.search(r'btree_map = "([^"]*)"', attr).group(1).split(",")]
                if kt != "string":
                    raise SystemExit("unsupported map key in " + key)
                if vt == "message":
                    kind = "MapMsg(%d)" % index[resolve_type(key.rsplit(".", 1)[0], ftype)]
                elif vt in ("string", "bytes"):
                    kind = "MapStr" if vt == "string" else "MapBytes"
                else:
                    raise SystemExit("unsupported map value in " + key)
            elif kind_word == "message":
                kind = "Msg(%d)" % index[resolve_type(key.rsplit(".", 1)[0], ftype)]
            else:
                base = kind_word.split("=")[0].strip()
                kind = SCALARS[base]
            if "repeated" in attr:
                flags.append("REP")
            if info is None:
                json = lower_camel(rname)
                flags.append("KEEP")
                if special == "None":
                    warnings.append("no Go field %s.%d (%s)" % (key, tag, rname))
                order = 1000 + tag
            else:
                json = info["json"]
                if info["pointer"] or not info["omitempty"]:
                    flags.append("KEEP")
                if info["inline"]:
                    flags.append("INLINE")
                if json == "-":
                    flags.append("SKIP")
                order = info["order"]
            rows.append((order, 'f(%d, "%s", %s, %s)' % (tag, json, kind, "|".join(flags) or "0")))
        rows.sort()
        out.append('    Msg {')
        out.append('        name: "%s",' % display_name(key))
        out.append("        special: Special::%s," % special)
        if rows:
            out.append("        fields: &[")
            for _, r in rows:
                out.append("            %s," % r)
            out.append("        ],")
        else:
            out.append("        fields: &[],")
        out.append("    },")
    out.append("];")
    out.append("")
    out.append("/// (apiVersion, kind, index into MESSAGES), sorted for binary search.")
    out.append("pub static KINDS: &[(&str, &str, u16)] = &[")
    for av, k, key in sorted(set(kinds)):
        out.append('    ("%s", "%s", %d),' % (av, k, index[key]))
    out.append("];")
    print("\n".join(out))
    for w in warnings:
        print("warning: " + w, file=sys.stderr)


if __name__ == "__main__":
    main()
