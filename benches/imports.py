#!/usr/bin/env python3
"""The library's import graph, file by file: which file of src/ names an item
of which other, through `use crate::...`, `use super::...`, a child module's
path or a path written in the code (`crate::keys::KeySet::parse(...)`).
A re-export is followed to the file that defines the item, so that going
through a module's `pub use` is not counted as depending on the module file.
Test code (`#[cfg(test)]`) is left out.

It reports two things, and exits 1 when either is not empty:
- cycles: sets of files that import each other, directly or around a loop
  (but those that an edge in PENDING closes);
- climbs: imports against LAYERS, a lower layer naming a higher one.

    python3 benches/imports.py            # cycles and climbs
    python3 benches/imports.py --edges    # and every edge, `from -> to: names`
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"

# The layers, as (files, what they may not name, exceptions): paths under
# src/, a folder ending in `/`. The gate and the key set are the bottom,
# below them the error types and helpers they share; inside the gate,
# validation (and the `methods` list it hands each principal, and the path
# patterns that list is written in) knows nothing
# of the gate's assembly; the server assembly knows neither the command line
# nor the proxy nor authz (it takes any fallback service, any decider); the
# command line is the top.
LAYERS = [
    (["gate/", "keys/", "error.rs", "error/", "net.rs", "util.rs"],
     ["server/", "proxy/", "authz/", "cli/", "client/", "issuer/"], []),
    (["keys/", "error.rs", "error/", "net.rs", "util.rs"], ["gate/"], []),
    (["error.rs", "error/", "net.rs", "util.rs"], ["keys/"], []),
    (["gate/validate/", "gate/methods.rs", "gate/pattern.rs"], ["gate/"],
     ["gate/validate/", "gate/methods.rs", "gate/pattern.rs"]),
    (["server/"], ["cli/", "proxy/", "authz/"], []),
    (["proxy/"], ["cli/", "authz/"], []),
    (["authz/"], ["cli/"], []),
    (["client/"], ["cli/", "server/", "proxy/", "authz/", "issuer/"], []),
    (["issuer/"], ["cli/", "server/", "proxy/", "authz/", "client/"], []),
]

# Edges that close a cycle and that the server and gate rewrite under way
# removes (each with the change that does it in the commit that added it):
# shown, not failed on. An edge listed here that is gone fails the check
# until it is taken off the list, so the list only shrinks.
PENDING = set()

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """The code without comments, string and char contents, so that
    neither a doc comment nor a message is read as a path."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif m := re.match(r'b?r(#*)"', text[i:i + 300]):
            if i and (text[i - 1].isalnum() or text[i - 1] == "_"):
                out.append(c)
                i += 1
                continue
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            out.append('""')
            i = n if j < 0 else j + len(end)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_item(code, i):
    """The end of the item starting at `i`: after its `;` or its block."""
    depth = 0
    while i < len(code):
        c = code[i]
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
            if depth == 0 and c == "}":
                return i + 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return i


CFG_TEST = re.compile(r"#\[cfg\(\s*test\s*\)\]")


def without_tests(code):
    while m := CFG_TEST.search(code):
        end = skip_item(code, m.end())
        code = code[:m.start()] + code[end:]
    return code


class File:
    def __init__(self, path, module):
        self.path = path
        self.module = module  # ("gate", "validate") for src/gate/validate/mod.rs
        self.code = without_tests(strip(path.read_text()))
        self.children = {}  # child module name -> File
        self.names = {}  # a `use`'s name -> the path it stands for
        self.globs = []  # the modules of its `use ...::*`
        self.defined = defined(self.code)


def defined(code):
    """The names a file's own items take in its module (depth 0 only: not
    methods, not an inline module's items)."""
    names, depth, last = set(), 0, 0
    for m in re.finditer(r"[{}]|\b(?:fn|struct|enum|const|static|type|trait|union|mod)\s+(" + IDENT + r")|macro_rules!\s*(" + IDENT + r")", code):
        if m.group(0) == "{":
            depth += 1
        elif m.group(0) == "}":
            depth -= 1
        elif depth == 0:
            names.add(m.group(1) or m.group(2))
    return names


def module_files():
    root = File(SRC / "lib.rs", ())
    files, todo = {(): root}, [root]
    while todo:
        f = todo.pop()
        here = f.path.parent if f.path.name in ("lib.rs", "mod.rs") else f.path.with_suffix("")
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*;", f.code):
            name = m.group(1)
            for p in (here / f"{name}.rs", here / name / "mod.rs"):
                if p.exists():
                    child = File(p, f.module + (name,))
                    f.children[name] = child
                    files[child.module] = child
                    todo.append(child)
                    break
    return files


def use_trees(code):
    """Each `use` statement's text and inline-module depth, and the code
    with them taken out."""
    depth = inline_depth(code)
    trees, rest, last = [], [], 0
    for m in re.finditer(r"\buse\s+", code):
        if m.start() < last:
            continue
        end = skip_item(code, m.end())
        trees.append((code[m.end():end].rstrip(";"), depth(m.start())))
        rest.append(code[last:m.start()])
        last = end
    rest.append(code[last:])
    return trees, "".join(rest)


def inline_depth(code):
    """How many inline modules (`mod x { ... }`, a macro's `mod $x {`)
    enclose a position of `code`: each is one more `super` to climb."""
    spans = []
    for m in re.finditer(r"\bmod\s+\$?" + IDENT + r"\s*\{", code):
        spans.append((m.end(), skip_item(code, m.end() - 1)))
    return lambda pos: sum(1 for a, b in spans if a <= pos < b)


def split_top(body):
    parts, depth, cur = [], 0, ""
    for c in body:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return parts


def flatten(tree):
    """`a::{b, c::{self, d as e}, f::*}` as (name, path) pairs."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "~", tree.strip()))

    def parse(s, prefix):
        if not s:
            return
        brace = s.find("{")
        if brace >= 0:
            head = tuple(x for x in s[:brace].split("::") if x)
            for part in split_top(s[brace + 1: s.rfind("}")]):
                yield from parse(part, prefix + head)
            return
        path, _, alias = s.partition("~")
        segs = tuple(x for x in path.split("::") if x)
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        full = prefix + segs
        if full:
            yield (alias or full[-1], full)

    return list(parse(tree, ()))


def lookup(f, name, files, seen=()):
    """What `name` stands for in file `f`'s module, from the crate root:
    a child module, a `use`, or a name a glob import brings; None when it
    is defined in `f`, or is another crate's or the prelude's."""
    if name in f.children:
        return f.module + (name,)
    if name in f.names:
        return f.names[name]
    if name in f.defined:
        return None
    for glob in f.globs:
        if glob is None or glob not in files or glob in seen:
            continue
        g = files[glob]
        if name in g.defined:
            return glob + (name,)
        got = lookup(g, name, files, seen + (glob,))
        if got is not None:
            return got
    return None


def absolute(f, segs, files, inline=0):
    """`segs` as written in file `f`, inside `inline` inline modules, from
    the crate root; None when it names another crate."""
    module = f.module
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] in ("self", "super"):
        while segs and segs[0] in ("self", "super"):
            if segs[0] == "super":
                if inline:
                    inline -= 1
                else:
                    module = module[:-1]
            segs = segs[1:]
        return module + segs
    head = lookup(f, segs[0], files)
    return None if head is None else head + segs[1:]


def resolve(path, files, seen=()):
    """The file that defines the item `path` names; None for a module
    itself (naming a module is no dependency: naming its items is)."""
    module, i = (), 0
    while i < len(path) and module + (path[i],) in files:
        module += (path[i],)
        i += 1
    f = files[module]
    if i == len(path):
        return None
    name = path[i]
    if name in f.defined or (module, name) in seen:
        return f
    target = lookup(f, name, files)
    if target is None:
        return f
    return resolve(target + path[i + 1:], files, seen + ((module, name),))


def graph():
    files = module_files()
    for f in files.values():
        trees, f.rest = use_trees(f.code)
        f.uses = [(alias, segs, inline) for t, inline in trees for alias, segs in flatten(t)]
    # Each file's names first, so that paths through them resolve; twice,
    # for a `use` that goes through a name a later one brings.
    for _ in range(2):
        for f in files.values():
            f.globs = [absolute(f, segs[:-1], files, n) for a, segs, n in f.uses if a == "*"]
            for alias, segs, inline in f.uses:
                if alias != "*":
                    f.names[alias] = absolute(f, segs, files, inline)
    edges = {}
    for f in files.values():
        refs = [(segs, inline) for alias, segs, inline in f.uses if alias != "*"]
        depth = inline_depth(f.rest)
        for m in re.finditer(r"(?<![\w:$.])(" + IDENT + r"(?:::" + IDENT + r")*)", f.rest):
            segs = tuple(m.group(1).split("::"))
            # A bare name counts only when a glob brings it.
            if len(segs) > 1 or (segs[0] not in f.names and segs[0] not in f.defined):
                refs.append((segs, depth(m.start())))
        for segs, inline in refs:
            full = absolute(f, segs, files, inline)
            if not full:
                continue
            target = resolve(full, files)
            if target is not None and target is not f:
                edges.setdefault((f, target), set()).add("::".join(full))
    return files, edges


def rel(f):
    return str(f.path.relative_to(SRC))


def under(path, prefixes):
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes)


def cycles(files, edges):
    """Strongly connected components of more than one file (Tarjan)."""
    out = {f: [] for f in files.values()}
    for a, b in edges:
        out[a].append(b)
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in out[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w is v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc, key=rel))

    sys.setrecursionlimit(10000)
    for v in sorted(files.values(), key=rel):
        if v not in index:
            visit(v)
    return sorted(sccs, key=lambda s: rel(s[0]))


def climbs(edges):
    found = []
    for (a, b), names in edges.items():
        for files, forbidden, allowed in LAYERS:
            if under(rel(a), files) and under(rel(b), forbidden) and not under(rel(b), allowed):
                found.append((a, b, names))
                break
    return sorted(found, key=lambda e: (rel(e[0]), rel(e[1])))


def show(edges, members=None):
    for (a, b), names in sorted(edges.items(), key=lambda e: (rel(e[0][0]), rel(e[0][1]))):
        if members is None or (a in members and b in members):
            print(f"  {rel(a)} -> {rel(b)}: {', '.join(sorted(names))}")


def main():
    files, edges = graph()
    if "--edges" in sys.argv:
        show(edges)
        print()
    all_cycles = cycles(files, edges)
    pending = {e: n for e, n in edges.items() if (rel(e[0]), rel(e[1])) in PENDING}
    gone = PENDING - {(rel(a), rel(b)) for a, b in edges}
    sccs = cycles(files, {e: n for e, n in edges.items() if e not in pending})
    found = climbs(edges)
    print(f"{len(files)} files, {len(edges)} import edges: {len(all_cycles)} cycles "
          f"({len(all_cycles) - len(sccs)} pending), {len(found)} climbs")
    for scc in sccs:
        print("cycle: " + ", ".join(rel(f) for f in scc))
        show(edges, set(scc))
    for a, b, names in found:
        print(f"climb: {rel(a)} -> {rel(b)}: {', '.join(sorted(names))}")
    if pending:
        print("pending (cycles the rewrite under way removes):")
        show(pending)
    for a, b in sorted(gone):
        print(f"gone: {a} -> {b} is no longer imported: take it off PENDING in {__file__}")
    return 1 if sccs or found or gone else 0


if __name__ == "__main__":
    sys.exit(main())
