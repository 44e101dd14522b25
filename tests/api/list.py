#!/usr/bin/env python3
"""The library's public API, one line per item, sorted: what a user of the
crate can name, with the signature that a change to it would break.

Reads the rustdoc JSON of the library (`cargo rustdoc --lib -- -Z
unstable-options --output-format json`; stable rustdoc takes it with
RUSTC_BOOTSTRAP=1) and prints every public module, type, field, variant,
function, method, constant, type alias and trait, at each path it is
reachable by; each type's trait implementations (blanket ones left out) and
its auto traits Send, Sync and Unpin. Items hidden from the docs (`#[doc(hidden)]`: the command
line's module and `test_util`) are not part of the API and not listed.

    python3 tests/api/list.py target/doc/authgate.json > api/authgate.txt
"""
import json
import sys


# The auto traits a user relies on (sending across tasks, pinning); the
# others (UnwindSafe, Freeze, ...) change with any field and say little.
AUTO = {"core::marker::Send": "Send", "core::marker::Sync": "Sync", "core::marker::Unpin": "Unpin"}
# Implementations derive writes beside the trait a user sees.
SKIPPED = {"core::marker::StructuralPartialEq"}


def main(path):
    doc = json.load(open(path))
    index, paths = doc["index"], doc["paths"]
    public = {}  # id -> the first public path found for it
    lines = set()

    def name_of(id_, fallback):
        if id_ is None:
            return fallback
        id_ = str(id_)
        if id_ in public:
            return public[id_]
        summary = paths.get(id_)
        if summary:
            return "::".join(summary["path"])
        return fallback.lstrip(":").replace("$crate::", "")

    # Types -------------------------------------------------------------
    def ty(t):
        if t is None:
            return "()"
        (kind, v), = t.items()
        if kind == "resolved_path":
            return name_of(v["id"], v["path"]) + args(v.get("args"))
        if kind == "generic":
            return v
        if kind == "primitive":
            return v
        if kind == "borrowed_ref":
            life = f"{v['lifetime']} " if v.get("lifetime") else ""
            return f"&{life}{'mut ' if v['is_mutable'] else ''}{ty(v['type'])}"
        if kind == "raw_pointer":
            return f"*{'mut' if v['is_mutable'] else 'const'} {ty(v['type'])}"
        if kind == "tuple":
            inner = ", ".join(ty(x) for x in v)
            return f"({inner},)" if len(v) == 1 else f"({inner})"
        if kind == "slice":
            return f"[{ty(v)}]"
        if kind == "array":
            return f"[{ty(v['type'])}; {v['len']}]"
        if kind == "impl_trait":
            return "impl " + bounds(v)
        if kind == "dyn_trait":
            parts = [poly(p) for p in v["traits"]]
            if v.get("lifetime"):
                parts.append(v["lifetime"])
            return "dyn " + " + ".join(parts)
        if kind == "qualified_path":
            self_ty = ty(v["self_type"])
            if v.get("trait"):
                return f"<{self_ty} as {path_(v['trait'])}>::{v['name']}{args(v.get('args'))}"
            return f"{self_ty}::{v['name']}{args(v.get('args'))}"
        if kind == "function_pointer":
            sig = v["sig"]
            inputs = ", ".join(ty(t) for _, t in sig["inputs"])
            out = f" -> {ty(sig['output'])}" if sig.get("output") else ""
            return f"fn({inputs}){out}"
        if kind == "infer":
            return "_"
        return kind

    def path_(p):
        return name_of(p.get("id"), p["path"]) + args(p.get("args"))

    def args(a):
        if not a:
            return ""
        if a == "return_type_notation":
            return "(..)"
        (kind, v), = a.items()
        if kind == "parenthesized":
            out = f" -> {ty(v['output'])}" if v.get("output") else ""
            return "(" + ", ".join(ty(t) for t in v["inputs"]) + ")" + out
        items = []
        for arg in v["args"]:
            if arg == "infer":
                items.append("_")
                continue
            (k, x), = arg.items()
            if k == "type":
                items.append(ty(x))
            elif k == "lifetime":
                items.append(x)
            elif k == "const":
                items.append(x.get("expr") or x.get("value") or "_")
        for c in v.get("constraints", []):
            (k, x), = c["binding"].items()
            if k == "equality":
                (kk, xx), = x.items()
                items.append(f"{c['name']}{args(c.get('args'))} = {ty(xx) if kk == 'type' else xx}")
            else:
                items.append(f"{c['name']}: {bounds(x)}")
        return "<" + ", ".join(items) + ">" if items else ""

    def poly(p):
        hrtb = ""
        if p.get("generic_params"):
            hrtb = "for<" + ", ".join(g["name"] for g in p["generic_params"]) + "> "
        return hrtb + path_(p["trait"])

    def bounds(bs):
        out = []
        for b in bs:
            (kind, v), = b.items()
            if kind == "trait_bound":
                mod = {"maybe": "?", "maybe_const": "~const "}.get(v.get("modifier"), "")
                out.append(mod + poly(v))
            elif kind == "outlives":
                out.append(v)
            elif kind == "use":
                out.append("use<" + ", ".join(str(x) for x in v) + ">")
        return " + ".join(out)

    def generics(g, skip_synthetic=True):
        params = []
        for p in g["params"]:
            (kind, v), = p["kind"].items()
            if kind == "type" and v.get("is_synthetic") and skip_synthetic:
                continue
            if kind == "lifetime":
                params.append(p["name"] + (": " + " + ".join(v["outlives"]) if v["outlives"] else ""))
            elif kind == "type":
                b = f": {bounds(v['bounds'])}" if v["bounds"] else ""
                d = f" = {ty(v['default'])}" if v.get("default") else ""
                params.append(p["name"] + b + d)
            elif kind == "const":
                params.append(f"const {p['name']}: {ty(v['type'])}")
        return "<" + ", ".join(params) + ">" if params else ""

    def where(g):
        preds = []
        for w in g["where_predicates"]:
            (kind, v), = w.items()
            if kind == "bound_predicate":
                preds.append(f"{ty(v['type'])}: {bounds(v['bounds'])}")
            elif kind == "lifetime_predicate":
                preds.append(f"{v['lifetime']}: {' + '.join(v['outlives'])}")
            elif kind == "eq_predicate":
                preds.append(f"{ty(v['lhs'])} = {ty(v['rhs']['type']) if 'type' in v['rhs'] else v['rhs']}")
        return " where " + ", ".join(preds) if preds else ""

    def fn_sig(name, f):
        header = f["header"]
        quals = "".join(q for q, on in [("const ", header["is_const"]), ("async ", header["is_async"]),
                                         ("unsafe ", header["is_unsafe"])] if on)
        inputs = []
        for arg, t in f["sig"]["inputs"]:
            if arg == "self":
                t = ty(t)
                if t == "Self" or t.endswith("&Self") or t.endswith("&mut Self"):
                    inputs.append(t[: -len("Self")] + "self")
                else:
                    inputs.append(f"self: {t}")
            else:
                inputs.append(f"{arg}: {ty(t)}")
        out = f" -> {ty(f['sig']['output'])}" if f["sig"].get("output") else ""
        return f"{quals}fn {name}{generics(f['generics'])}({', '.join(inputs)}){out}{where(f['generics'])}"

    # Items -------------------------------------------------------------
    def marks(item):
        out = "#[deprecated] " if item.get("deprecation") else ""
        if any(a == "non_exhaustive" or (isinstance(a, dict) and "non_exhaustive" in a)
               for a in item.get("attrs", [])):
            out += "#[non_exhaustive] "
        return out

    def add(line):
        lines.add(line)

    def visit(id_, path):
        id_ = str(id_)
        item = index.get(id_)
        if item is None:
            return
        (kind, v), = item["inner"].items()
        if kind == "use":
            if v["id"] is None:
                add(f"pub use {path}::{v['name']} (from {v['source']})")
                return
            target = index.get(str(v["id"]))
            if v["is_glob"]:
                if target and "module" in target["inner"]:
                    for child in target["inner"]["module"]["items"]:
                        visit(child, path)
                return
            if target is None:
                # Another crate's item, re-exported.
                add(f"pub use {path}::{v['name']} = {name_of(v['id'], v['source'])}")
                return
            visit_named(str(v["id"]), target, f"{path}::{v['name']}")
            return
        visit_named(id_, item, f"{path}::{item['name']}" if path else item["name"])

    def visit_named(id_, item, full):
        (kind, v), = item["inner"].items()
        public.setdefault(id_, full)
        m = marks(item)
        if kind == "module":
            add(f"{m}pub mod {full}")
            for child in v["items"]:
                if index.get(str(child), {}).get("visibility") == "public":
                    visit(child, full)
        elif kind == "struct":
            struct_kind = v["kind"]
            add(f"{m}pub struct {full}{generics(v['generics'])}{where(v['generics'])}")
            if isinstance(struct_kind, dict) and "plain" in struct_kind:
                for f in struct_kind["plain"]["fields"]:
                    field(f, full)
            elif isinstance(struct_kind, dict) and "tuple" in struct_kind:
                for i, f in enumerate(struct_kind["tuple"]):
                    if f is not None:
                        add(f"pub struct field {full}.{i}: {ty(index[str(f)]['inner']['struct_field'])}")
            impls(v["impls"], full)
        elif kind == "enum":
            add(f"{m}pub enum {full}{generics(v['generics'])}{where(v['generics'])}")
            for var in v["variants"]:
                variant(index[str(var)], full)
            impls(v["impls"], full)
        elif kind == "union":
            add(f"{m}pub union {full}{generics(v['generics'])}")
            impls(v["impls"], full)
        elif kind == "function":
            add(f"{m}pub {fn_sig(full, v)}")
        elif kind == "constant":
            add(f"{m}pub const {full}: {ty(v['type'])}")
        elif kind == "static":
            add(f"{m}pub static {full}: {ty(v['type'])}")
        elif kind == "type_alias":
            add(f"{m}pub type {full}{generics(v['generics'])} = {ty(v['type'])}")
        elif kind == "trait":
            sup = f": {bounds(v['bounds'])}" if v["bounds"] else ""
            add(f"{m}pub trait {full}{generics(v['generics'])}{sup}")
            for child in v["items"]:
                assoc(index[str(child)], full, trait_item=True)
        elif kind == "macro":
            add(f"pub macro {full}!")
        else:
            add(f"pub {kind} {full}")

    def field(fid, owner):
        f = index[str(fid)]
        if f["visibility"] == "public":
            add(f"{marks(f)}pub struct field {owner}::{f['name']}: {ty(f['inner']['struct_field'])}")

    def variant(var, owner):
        v = var["inner"]["variant"]
        full = f"{owner}::{var['name']}"
        k = v["kind"]
        if k == "plain":
            add(f"{marks(var)}pub enum variant {full}")
        elif "tuple" in k:
            fields = ", ".join(ty(index[str(f)]["inner"]["struct_field"]) if f is not None else "_"
                               for f in k["tuple"])
            add(f"{marks(var)}pub enum variant {full}({fields})")
        else:
            add(f"{marks(var)}pub enum variant {full} {{ .. }}")
            for f in k["struct"]["fields"]:
                sub = index[str(f)]
                add(f"pub enum variant field {full}::{sub['name']}: {ty(sub['inner']['struct_field'])}")

    def assoc(item, owner, trait_item=False):
        (kind, v), = item["inner"].items()
        full = f"{owner}::{item['name']}"
        if not trait_item and item["visibility"] != "public":
            return
        m = marks(item)
        if kind == "function":
            add(f"{m}pub {fn_sig(full, v)}")
        elif kind == "assoc_const":
            add(f"{m}pub const {full}: {ty(v['type'])}")
        elif kind == "assoc_type":
            add(f"{m}pub type {full}" + (f" = {ty(v['type'])}" if v.get("type") else ""))

    def impls(ids, owner):
        auto = []
        for i in ids:
            imp = index[str(i)]["inner"]["impl"]
            if imp["blanket_impl"] is not None:
                continue
            trait = imp["trait"] and name_of(imp["trait"].get("id"), imp["trait"]["path"])
            if imp["is_synthetic"]:
                if trait in AUTO:
                    g = imp["generics"]
                    auto.append(("!" if imp["is_negative"] else "") + AUTO[trait] + where(g))
                continue
            if trait in SKIPPED:
                continue
            if imp["trait"] is None:
                for child in imp["items"]:
                    assoc(index[str(child)], owner)
                continue
            g = imp["generics"]
            neg = "!" if imp["is_negative"] else ""
            unsafe = "unsafe " if imp["is_unsafe"] else ""
            add(f"{unsafe}impl{generics(g)} {neg}{path_(imp['trait'])} for {ty(imp['for'])}{where(g)}")
        if auto:
            add(f"auto traits {owner}: {', '.join(sorted(auto, key=lambda a: a.lstrip('!')))}")

    # Types first get their public paths, so that signatures name them
    # as a user does: a first pass records, the second prints.
    root = index[str(doc["root"])]
    for _ in range(2):
        lines.clear()
        for child in root["inner"]["module"]["items"]:
            if index.get(str(child), {}).get("visibility") == "public":
                visit(child, "authgate")
    for line in sorted(lines):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
