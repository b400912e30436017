#!/usr/bin/env python3
"""Checks the module structure of the layered crates: no import cycle between module files, no
import from a higher layer (the LAYERS table below), no file outside the table.

Usage: python3 .ci/module_cycles.py [repo-root]   (default: the parent of this script's folder)

An edge A -> B means file A names module B through `crate::`, `super::` or `self::`, in a `use`
(braces nested) or inline in code. A path goes to the longest prefix that is a module file
(`crate::export::worker::Waiter` -> export/worker.rs). Not edges: a file to itself, and a
`pub use` / `pub(crate) use` of the file's own descendants (a front door). Comments and
`#[cfg(test)]` modules are left out. Python 3.11, standard library only.
"""

import os
import re
import sys

LAYERS = {
    "observe-runtime/src": [
        ("leaves", ["capture.rs", "clock.rs", "diagnostics.rs", "ids.rs", "mask.rs", "media.rs",
                    "percent.rs", "python_json.rs", "sync.rs", "text.rs", "unobserved.rs"]),
        ("record", ["record/"]),
        ("export", ["export/"]),
        ("api", ["api/"]),
        ("prompt", ["prompt/", "dataset/"]),
        ("config", ["config/"]),
        ("gate", ["gate.rs"]),
        ("local", ["local/"]),
        ("bridge", ["bridge/"]),
        ("lifecycle", ["lifecycle/"]),
        ("experiment", ["experiment/"]),
        ("testing", ["testing.rs"]),
        ("front doors", ["lib.rs", "private.rs"]),
    ],
    "observe-macros/src": [
        ("the attribute's options and the signature's shape", ["arguments.rs", "attr.rs", "shape.rs"]),
        ("code generation", ["expand.rs"]),
        ("front door", ["lib.rs"]),
    ],
    "observe-openai/src": [
        ("JSON text", ["json.rs", "chunk.rs"]),
        ("requests and prices", ["endpoint.rs", "price.rs"]),
        ("call", ["call.rs"]),
        ("stream", ["stream.rs"]),
        ("layer", ["layer.rs"]),
        ("front door", ["lib.rs"]),
    ],
}


def module_of(file):  # "export/worker.rs" -> ("export", "worker")
    parts = file[:-3].split("/")
    return tuple(parts[:-1] if parts[-1] in ("mod", "lib") else parts)


def group(text, start):  # the entries of a `{...}` group opening before `start`, nested kept
    depth, entries, current = 1, [], ""
    for ch in text[start:]:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0 or (ch == "," and depth == 1):
            entries.append(current.strip())
            current = ""
            if depth == 0:
                return entries
        else:
            current += ch
    return entries


def targets(base, names):  # (module path, name) pairs named by `base::{names}`, groups flattened
    for name in names:
        head, _, rest = name.partition("::{")
        head = head.split(" as ")[0].replace(" ", "")
        path = base + tuple(p for p in head.split("::") if p and p != "self")
        if rest:
            yield from targets(path, group(rest, 0))
        else:
            yield path


def paths(src, file, modules):  # (re-export?, module path) for every path the file names
    text = open(os.path.join(src, file)).read()
    text = re.split(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\][^\n]*\s*)*(?:pub(?:\([^)]*\))?\s+)?mod \w+ \{", text)[0]
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    here = module_of(file)
    children = [m[-1] for m in modules if len(m) == len(here) + 1 and m[: len(here)] == here]
    roots = "|".join(["crate", "super", "self"] + children)
    pattern = r"(?<![\w:])(pub(?:\([^)]*\))?\s+use\s+)?(" + roots + r")((?:::\w+)*)::(\{)?"
    for m in re.finditer(pattern, text):
        root = m.group(2)
        base = {"crate": (), "self": here, "super": here[:-1]}.get(root, here + (root,))
        rest = tuple(p for p in m.group(3).split("::") if p)
        if m.group(4):
            names = group(text, m.end())
        else:
            names = [re.match(r"\w*", text[m.end():]).group(0)]
        for path in targets(base + rest, names):
            yield bool(m.group(1)), path


def resolve(path, modules, exports):  # the file that defines what `path` names
    prefix = max((p for p in modules if path[: len(p)] == p), key=len, default=None)
    if prefix is None:
        return None
    file, name = modules[prefix], path[len(prefix): len(prefix) + 1]
    if name and name[0] in exports.get(file, {}):
        return exports[file][name[0]]
    return file


def main(root):
    problems, files_total, edges_total = [], 0, 0
    for crate, layers in LAYERS.items():
        src = os.path.join(root, crate)
        files = sorted(os.path.relpath(os.path.join(d, f), src).replace(os.sep, "/")
                       for d, _, fs in os.walk(src) for f in fs if f.endswith(".rs"))
        rank = {f: next((i for i, (_, ms) in enumerate(layers) for m in ms
                         if f == m or (m.endswith("/") and f.startswith(m))), None) for f in files}
        problems += [f"{crate}/{f} belongs to no layer (add it to LAYERS)" for f in files if rank[f] is None]
        modules = {module_of(f): f for f in files}
        named = {f: list(paths(src, f, modules)) for f in files}
        exports = {}  # file -> {name it re-exports: the file that defines it}
        for f in files:
            for reexport, path in named[f]:
                owner = resolve(path, modules, {}) if reexport else None
                if owner and owner != f:
                    exports.setdefault(f, {})[path[-1]] = owner
        graph = {}
        for f in files:
            here = module_of(f)
            graph[f] = set()
            for reexport, path in named[f]:
                target = resolve(path, modules, exports)
                if target and target != f and not (reexport and path[: len(here)] == here):
                    graph[f].add(target)
        for a in files:
            for b in sorted(graph[a]):
                edges_total += 1
                if None not in (rank[a], rank[b]) and rank[b] > rank[a]:
                    problems.append(f"{crate}/{a} ({layers[rank[a]][0]}) imports from {b} "
                                    f"({layers[rank[b]][0]}), a higher layer")
        reach = {}
        for f in files:  # everything reachable from f
            seen, todo = set(), [f]
            while todo:
                for n in graph[todo.pop()] - seen:
                    seen.add(n)
                    todo.append(n)
            reach[f] = seen
        cycles = {tuple(sorted(g for g in files if f in reach[g] and g in reach[f])) for f in files if f in reach[f]}
        problems += [f"{crate}: import cycle between {', '.join(c)}" for c in sorted(cycles)]
        files_total += len(files)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"module cycles: none, and no import against the layers ({files_total} files, "
          f"{edges_total} import edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))))
