#!/usr/bin/env python3
"""Finds import cycles between the module files of each crate in the workspace.

Usage: python3 .ci/module_cycles.py [repo-root]      (default: the parent of this script's folder)

Each crate (`*/src/lib.rs` under the root) is a graph with one node per module file: `lib.rs` is
the crate root, `foo.rs` or `foo/mod.rs` is `foo`, `foo/bar.rs` is `foo::bar`, and a
`#[path = "x.rs"] mod m;` declaration gives `x.rs` the module path `m`. An edge A -> B means file
A names something of module B: in a `use` (`crate::`, `super::`, `self::`, or a child module or
imported module alias; braces, nested braces and several lines allowed) or inline in the code
(`crate::gate::enabled()`, `super::otlp::encode(..)`, `worker::Waiter` after `mod worker;` or
`use ..::worker;`). Comments, string and char literals and `#[cfg(test)]` items are left out.

A path resolves to the longest prefix that is a module file (`crate::export::worker::Waiter` ->
export/worker.rs, `crate::export::Stats` -> export/mod.rs). When the name found there is itself
an import of that file (`pub use transport::AuthCheck` in export/mod.rs), the edge goes on to the
file that defines it, so importing through a front door counts as depending on the real owner.

Not edges: a file to itself; `mod x;` declarations; a re-export (`pub use`, `pub(crate) use`) of
one of the file's own descendants, as lib.rs and a folder's mod.rs do as front doors, unless the
re-exported name is also used in that file's own code. A child importing from its parent's
mod.rs (`use super::{Counters, Sink}`) is an edge, and so is the parent using a child's item in
its own code (`worker::Waiter` in a trait in export/mod.rs).

Prints every strongly connected component of more than one file (Tarjan, iterative) with the
edges inside it and the names each edge imports, and exits 1; with none, prints
`module cycles: none (N files, M import edges)` and exits 0. Notes about declarations without a
file, files no `mod` reaches and paths that name no module file go to stderr and do not change the
exit code. Python 3.11, standard library only.
"""

from __future__ import annotations

import os
import re
import sys
from collections import deque

IDENT = r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*"
IDENT_RE = re.compile(IDENT + r"\Z")
KEYWORD_ROOTS = ("crate", "$crate", "self", "super")

RAW_STR = re.compile(r'(?:b|c)?r(#*)"')
PREFIXED_STR = re.compile(r'(?:b|c)"')
CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
ATTR_START = re.compile(r"\s*#\s*!?\s*\[")
VIS = r"(?:pub\s*(?:\(\s*[^)]*\)\s*)?)?"
TEST_ITEM_MOD = re.compile(r"\s*" + VIS + r"mod\s+(" + IDENT + r")\s*([;{])")
TEST_ITEM_USE = re.compile(r"\s*" + VIS + r"use\b")
INLINE_MOD = re.compile(r"(?<![\w$#])mod\s+(" + IDENT + r")\s*\{")
MOD_DECL = re.compile(
    r"((?:#\s*\[[^\]]*\]\s*)*)" + VIS + r"(?<![\w$#])mod\s+(" + IDENT + r")\s*;"
)
PATH_ATTR = re.compile(r"#\s*\[\s*path\s*=\s*\"")
USE_STMT = re.compile(r"(?<![\w$#])(?:(pub)(?:\s*\(([^)]*)\))?\s*)?\buse\b")
PUB_IN = re.compile(r"\bpub\s*\(\s*in\s+[^)]*\)")
USE_TOKEN = re.compile(r"::|[{},*]|\$crate|(?:r#)?[A-Za-z_][A-Za-z0-9_]*|\S")
INLINE_PATH = re.compile(
    r"(?<![\w$:#.])(\$crate|" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)"
)
SEG_SPLIT = re.compile(r"\s*::\s*")


# ----------------------------------------------------------------------------------- lexing


def lex(src: str) -> tuple[str, dict[int, str]]:
    """Blanks comments and string/char literals (newlines kept, so offsets stay put).

    A string literal becomes `"   "`; the returned dict maps the offset of its first `"` to the
    literal's text, which `#[path = ".."]` needs.
    """
    out = list(src)
    strings: dict[int, str] = {}
    n = len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    def string(a: int, content_start: int, content_end: int, end: int) -> None:
        blank(a, end)
        out[a] = '"'
        out[max(a, end - 1)] = '"'
        strings[a] = src[content_start:content_end]

    i = 0
    while i < n:
        c = src[i]
        if c == "/" and src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
            continue
        if c == "/" and src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
            continue
        after_ident = i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")
        if c in "rbc" and not after_ident:
            m = RAW_STR.match(src, i)
            if m:
                close = '"' + m.group(1)
                j = src.find(close, m.end())
                j = n if j < 0 else j
                string(i, m.end(), j, j + len(close))
                i = j + len(close)
                continue
            m = PREFIXED_STR.match(src, i)
            if m:
                c, i0, i = '"', i, m.end() - 1
                j = _string_end(src, i)
                string(i0, i + 1, j - 1, j)
                i = j
                continue
        if c == '"':
            j = _string_end(src, i)
            string(i, i + 1, j - 1, j)
            i = j
            continue
        if c == "'":
            if i + 1 < n and src[i + 1] == "\\":
                j = src.find("'", i + 3)
                j = n - 1 if j < 0 else j
                blank(i, j + 1)
                i = j + 1
                continue
            if i + 2 < n and src[i + 2] == "'":
                blank(i, i + 3)
                i += 3
                continue
        i += 1
    return "".join(out), strings


def _string_end(src: str, i: int) -> int:
    """Offset just past the `"` closing the string whose opening `"` is at i."""
    j, n = i + 1, len(src)
    while j < n:
        if src[j] == "\\":
            j += 2
            continue
        if src[j] == '"':
            return j + 1
        j += 1
    return n


def match_close(code: str, i: int, open_ch: str = "{", close_ch: str = "}") -> int:
    """Offset just past the bracket closing the one at code[i]."""
    depth = 0
    for j in range(i, len(code)):
        ch = code[j]
        if ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def blank_range(code: str, a: int, b: int) -> str:
    return code[:a] + re.sub(r"[^\n]", " ", code[a:b]) + code[b:]


def strip_cfg_test(code: str) -> tuple[str, list[str]]:
    """Blanks every item under `#[cfg(test)]`; returns the code and the test-only `mod x;` names."""
    test_mods: list[str] = []
    pos = 0
    while True:
        m = CFG_TEST.search(code, pos)
        if not m:
            return code, test_mods
        start, i = m.start(), m.end()
        while True:  # further attributes on the same item
            a = ATTR_START.match(code, i)
            if not a:
                break
            i = match_close(code, a.end() - 1, "[", "]")
        end = None
        mm = TEST_ITEM_MOD.match(code, i)
        if mm:
            if mm.group(2) == ";":
                test_mods.append(_unraw(mm.group(1)))
                end = mm.end()
            else:
                end = match_close(code, mm.end() - 1)
        elif TEST_ITEM_USE.match(code, i):
            j = code.find(";", i)
            end = len(code) if j < 0 else j + 1
        else:
            depth, j = 0, i
            while j < len(code):
                ch = code[j]
                if ch in "([":
                    depth += 1
                elif ch in ")]":
                    depth -= 1
                elif depth <= 0 and ch == ";":
                    end = j + 1
                    break
                elif depth <= 0 and ch == "{":
                    end = match_close(code, j)
                    break
                j += 1
            if end is None:
                end = len(code)
        code = blank_range(code, start, end)
        pos = start + 1


def _unraw(name: str) -> str:
    return name[2:] if name.startswith("r#") else name


# ------------------------------------------------------------------------------ use trees


def parse_use_tree(tree: str) -> list[tuple[list[str], str | None]] | None:
    """`crate::{a::{B, C as D}, e::*}` -> [(["crate","a","B"], None), (["crate","a","C"], "D"),
    (["crate","e","*"], None)]. None when the text is not a use tree (macro fragments)."""
    tokens = USE_TOKEN.findall(tree)
    pos = 0
    leaves: list[tuple[list[str], str | None]] = []

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def is_ident(t: str | None) -> bool:
        return t is not None and (t == "$crate" or bool(IDENT_RE.match(t)))

    def subtree(prefix: list[str]) -> None:
        nonlocal pos
        segs = list(prefix)
        if peek() == "::":
            if not segs:
                segs.append("::")  # an absolute path: another crate
            pos += 1
        while True:
            t = peek()
            if t == "{":
                pos += 1
                while peek() != "}":
                    subtree(segs)
                    if peek() == ",":
                        pos += 1
                    elif peek() != "}":
                        raise ValueError(tree)
                pos += 1
                return
            if t == "*":
                pos += 1
                leaves.append((segs + ["*"], None))
                return
            if is_ident(t) and t != "as":
                segs.append(_unraw(t))
                pos += 1
                if peek() == "::":
                    pos += 1
                    continue
                alias = None
                if peek() == "as":
                    pos += 1
                    if not is_ident(peek()):
                        raise ValueError(tree)
                    alias = _unraw(tokens[pos])
                    pos += 1
                leaves.append((segs, alias))
                return
            raise ValueError(tree)

    try:
        subtree([])
        if pos != len(tokens):
            return None
    except (ValueError, IndexError):
        return None
    return leaves


# ---------------------------------------------------------------------------------- model


class UseLeaf:
    def __init__(self, segs, alias, vis, pos, depth, ctx):
        self.glob = segs[-1] == "*"
        self.module_self = segs[-1] == "self"
        self.segs = segs[:-1] if (self.glob or self.module_self) else segs
        self.alias = alias
        self.vis = vis  # None for a private use, else the visibility text ("" for plain pub)
        self.pos = pos
        self.depth = depth  # brace depth: 0 at file level
        self.ctx = ctx  # module path the statement sits in

    @property
    def exposed(self) -> str | None:
        if self.glob:
            return None
        return self.alias or (self.segs[-1] if self.segs else None)

    @property
    def reexport(self) -> bool:
        return self.vis is not None and self.vis != "self"


class FileInfo:
    def __init__(self, crate: "Crate", rel: str, modpath: tuple[str, ...]):
        self.crate = crate
        self.rel = rel
        self.modpath = modpath
        self.code = ""
        self.strings: dict[int, str] = {}
        self.test_mods: list[str] = []
        self.inline_mods: list[tuple[int, int, str]] = []
        self.depth_at: list[int] = []
        self.uses: list[UseLeaf] = []
        self.own_code = ""  # code without use statements, for inline paths and name checks
        self.decls: list[tuple[str, str | None, int]] = []  # (name, #[path] value, offset)

    def load(self) -> None:
        with open(os.path.join(self.crate.src, self.rel), encoding="utf-8") as f:
            src = f.read()
        code, self.strings = lex(src)
        code, self.test_mods = strip_cfg_test(code)
        self.code = code
        depth, self.depth_at = 0, [0] * (len(code) + 1)
        for k, ch in enumerate(code):
            self.depth_at[k] = depth
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
        self.depth_at[len(code)] = depth
        for m in INLINE_MOD.finditer(code):
            self.inline_mods.append((m.end() - 1, match_close(code, m.end() - 1), _unraw(m.group(1))))
        for m in MOD_DECL.finditer(code):
            if self.depth_at[m.start(2)] != 0:
                continue
            path = None
            p = PATH_ATTR.search(m.group(1) or "")
            if p:
                path = self.strings.get(m.start(1) + p.end() - 1)
            self.decls.append((_unraw(m.group(2)), path, m.start(2)))
        own = PUB_IN.sub(lambda x: " " * len(x.group(0)), code)
        own = MOD_DECL.sub(lambda x: re.sub(r"[^\n]", " ", x.group(0)), own)
        for m in USE_STMT.finditer(code):
            semi = code.find(";", m.end())
            if semi < 0:
                continue
            leaves = parse_use_tree(code[m.end():semi])
            if leaves is None:
                continue
            vis = (m.group(2) or "").strip() if m.group(1) else None
            ctx = self.ctx_at(m.start())
            for segs, alias in leaves:
                if segs and segs[0] != "::":
                    self.uses.append(UseLeaf(segs, alias, vis, m.start(), self.depth_at[m.start()], ctx))
            own = blank_range(own, m.start(), semi + 1)
        self.own_code = own

    def chain_at(self, pos: int) -> list[str]:
        return [name for (a, b, name) in sorted(self.inline_mods) if a <= pos < b]

    def ctx_at(self, pos: int) -> tuple[str, ...]:
        return self.modpath + tuple(self.chain_at(pos))

    def uses_name_in_own_code(self, name: str) -> bool:
        return re.search(r"(?<![\w$])" + re.escape(name) + r"(?![\w])", self.own_code) is not None

    def defines(self, name: str) -> bool:
        kinds = r"(?:fn|struct|enum|trait|type|const|static|union|mod|macro_rules\s*!)"
        return re.search(r"\b" + kinds + r"\s+(?:r#)?" + re.escape(name) + r"\b", self.code) is not None


class Crate:
    def __init__(self, root: str, src: str):
        self.root = root
        self.src = src
        self.name = os.path.relpath(src, root)
        self.nodes: dict[tuple[str, ...], str | None] = {}  # module path -> file (None: a folder)
        self.files: dict[str, FileInfo] = {}
        self.missing: dict[tuple[str, ...], set[str]] = {}  # declared `mod x;` with no file
        self.notes: list[str] = []
        self.test_only: set[str] = set()

    # -- the module tree
    def build(self) -> None:
        root_file = "lib.rs" if os.path.exists(os.path.join(self.src, "lib.rs")) else "main.rs"
        on_disk = []
        for dirpath, dirnames, filenames in os.walk(self.src):
            dirnames[:] = sorted(d for d in dirnames if not (dirpath == self.src and d == "bin"))
            for fn in sorted(filenames):
                if fn.endswith(".rs"):
                    rel = os.path.relpath(os.path.join(dirpath, fn), self.src).replace(os.sep, "/")
                    if rel in ("main.rs",) and root_file == "lib.rs":
                        continue
                    on_disk.append(rel)
        infos = {rel: FileInfo(self, rel, ()) for rel in on_disk}
        for info in infos.values():
            info.load()

        assigned: dict[str, tuple[str, ...]] = {}

        def walk(start: str, start_path: tuple[str, ...]) -> int:
            """Gives module paths to `start` and every file its `mod` declarations reach."""
            queue, count = deque([(start, start_path)]), 0
            while queue:
                rel, modpath = queue.popleft()
                if rel in assigned:
                    continue
                if modpath in assigned.values():
                    self.notes.append(f"{rel}: module path `crate::{'::'.join(modpath)}` is taken; skipped")
                    continue
                assigned[rel] = modpath
                count += 1
                info = infos[rel]
                here = os.path.dirname(rel)
                base = os.path.basename(rel)
                child_dir = here if base in ("lib.rs", "main.rs", "mod.rs") else os.path.join(here, base[:-3])
                for name, path, _ in info.decls:
                    if name in info.test_mods:
                        continue
                    if path is not None:
                        cands = [os.path.normpath(os.path.join(here, path))]
                    else:
                        cands = [
                            os.path.join(child_dir, name + ".rs"),
                            os.path.join(child_dir, name, "mod.rs"),
                        ]
                    cands = [c.replace(os.sep, "/").lstrip("/") for c in cands]
                    found = [c for c in cands if c in infos]
                    if not found:
                        self.missing.setdefault(modpath, set()).add(name)
                        self.notes.append(f"{rel}: `mod {name};` has no file ({' or '.join(cands)})")
                        continue
                    if len(found) > 1:
                        self.notes.append(f"{rel}: `mod {name};` matches both {found[0]} and {found[1]}")
                    queue.append((found[0], modpath + (name,)))
                for name in info.test_mods:
                    for c in (os.path.join(child_dir, name + ".rs"), os.path.join(child_dir, name, "mod.rs")):
                        self.test_only.add(c.replace(os.sep, "/").lstrip("/"))
            return count

        if root_file in infos:
            walk(root_file, ())

        def fs_path(rel: str) -> tuple[str, ...]:
            parts = rel[:-3].split("/")
            return tuple(parts[:-1] if parts[-1] == "mod" else parts)

        # Files no declaration reaches (a refactoring in progress): analysed where they lie.
        for rel in sorted(on_disk, key=lambda r: (len(fs_path(r)), r)):
            if rel in assigned or rel in self.test_only:
                continue
            modpath = fs_path(rel)
            before = len(self.notes)
            n = walk(rel, modpath)
            if n:
                more = f", with the {n - 1} more it declares" if n > 1 else ""
                where = "crate::" + "::".join(modpath)
                self.notes.insert(
                    before, f"{rel}: no `mod` declaration reaches it; analysed as `{where}`{more}"
                )

        for rel, modpath in assigned.items():
            info = infos[rel]
            info.modpath = modpath
            for leaf in info.uses:  # contexts were computed before the module path was known
                leaf.ctx = modpath + leaf.ctx
            self.files[rel] = info
            self.nodes[modpath] = rel
            for k in range(len(modpath)):
                self.nodes.setdefault(modpath[:k], None)

    def children(self, modpath: tuple[str, ...]) -> set[str]:
        names = {p[-1] for p in self.nodes if len(p) == len(modpath) + 1 and p[:-1] == modpath}
        return names | self.missing.get(modpath, set())

    # -- resolving paths
    def resolve(self, segs, ctx, scope):
        """(module path, file, remaining segments); None for another crate's path; a string when
        the path names no module file."""
        first = segs[0]
        if first in ("crate", "$crate"):
            base, rest = (), segs[1:]
        elif first == "self":
            base, rest = tuple(ctx), segs[1:]
        elif first == "super":
            k = 0
            while k < len(segs) and segs[k] == "super":
                k += 1
            if k > len(ctx):
                return "`super` above the crate root"
            base, rest = tuple(ctx[: len(ctx) - k]), segs[k:]
        elif scope is not None and first in scope:
            base, rest = scope[first], segs[1:]
        else:
            return None
        full = tuple(base) + tuple(rest)
        i = 0
        while i < len(full) and full[: i + 1] in self.nodes:
            i += 1
        deepest = full[:i]
        if deepest not in self.nodes:
            return "no module file"
        remaining = list(full[i:])
        if self.nodes[deepest] is None:
            return f"`crate::{'::'.join(deepest)}` is a folder with no mod.rs"
        if remaining and remaining[0] in self.missing.get(deepest, ()):
            return f"`mod {remaining[0]};` is declared but has no file"
        return deepest, self.nodes[deepest], remaining

    def follow(self, rel: str, remaining: list[str], seen: frozenset = frozenset()) -> str:
        """The file that defines remaining[0] when `rel` only imports it."""
        if not remaining or rel in seen:
            return rel
        info, name = self.files[rel], remaining[0]
        seen = seen | {rel}
        for leaf in info.uses:
            if leaf.depth == 0 and leaf.exposed == name and leaf.segs:
                r = self.resolve(leaf.segs + remaining[1:], leaf.ctx, self.children_scope(info))
                if isinstance(r, tuple):
                    return self.follow(r[1], r[2], seen)
                return rel
        if info.defines(name):
            return rel
        for leaf in info.uses:
            if leaf.depth == 0 and leaf.glob and leaf.segs:
                r = self.resolve(leaf.segs + remaining, leaf.ctx, self.children_scope(info))
                if isinstance(r, tuple) and r[1] != rel:
                    target = self.files[r[1]]
                    if target.defines(name) or any(u.exposed == name for u in target.uses if u.depth == 0):
                        return self.follow(r[1], r[2], seen)
        return rel

    def children_scope(self, info: FileInfo) -> dict[str, tuple[str, ...]]:
        return {name: info.modpath + (name,) for name in self.children(info.modpath)}

    # -- the edges
    def edges(self, unresolved: list[str]) -> dict[tuple[str, str], list[str]]:
        edges: dict[tuple[str, str], list[str]] = {}

        def add(a: str, b: str, name: str) -> None:
            if a == b:
                return
            names = edges.setdefault((a, b), [])
            if name not in names:
                names.append(name)

        for rel, info in sorted(self.files.items()):
            children = self.children_scope(info)
            aliases: dict[str, tuple[str, ...]] = {}
            for leaf in info.uses:
                if not leaf.segs:
                    continue
                r = self.resolve(leaf.segs, leaf.ctx, children if leaf.ctx == info.modpath else None)
                if r is None:
                    continue
                if isinstance(r, str):
                    unresolved.append(f"{rel}: `{'::'.join(leaf.segs)}`: {r}")
                    continue
                modpath, target, remaining = r
                if not remaining and not leaf.glob and leaf.depth == 0:
                    aliases[leaf.exposed] = modpath
                front_door = (
                    leaf.reexport
                    and len(modpath) > len(info.modpath)
                    and modpath[: len(info.modpath)] == info.modpath
                )
                if front_door and (leaf.glob or not info.uses_name_in_own_code(leaf.exposed)):
                    continue
                if leaf.glob:
                    add(rel, self.follow(target, remaining), "*" if not remaining else remaining[0])
                elif remaining:
                    add(rel, self.follow(target, remaining), remaining[0])
                else:
                    add(rel, target, "(module)")

            scope = dict(children)
            scope.update(aliases)
            for m in INLINE_PATH.finditer(info.own_code):
                first = _unraw(m.group(1))
                chain = info.chain_at(m.start())
                if first not in KEYWORD_ROOTS and (chain or first not in scope):
                    continue
                segs = [first] + [_unraw(s) for s in SEG_SPLIT.split(m.group(2).strip())[1:]]
                r = self.resolve(segs, info.modpath + tuple(chain), scope if not chain else None)
                if r is None:
                    continue
                if isinstance(r, str):
                    unresolved.append(f"{rel}: `{'::'.join(segs)}`: {r}")
                    continue
                _, target, remaining = r
                if remaining:
                    add(rel, self.follow(target, remaining), remaining[0])
                else:  # `crate::lifecycle::init(..)`: a function named like its module
                    add(rel, target, segs[-1])

        for names in edges.values():
            if "(module)" in names and len(names) > 1:
                names.remove("(module)")
        return edges


# ------------------------------------------------------------------------------- the graph


def tarjan(nodes: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components, without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            v, i = work[-1]
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            out = succ.get(v, [])
            if i < len(out):
                work[-1] = (v, i + 1)
                w = out[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(sorted(comp))
    return comps


def shortest_loop(start: str, members: set[str], succ: dict[str, list[str]]) -> list[str]:
    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in succ.get(v, []):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def find_crates(root: str) -> list[Crate]:
    crates = []
    candidates = [root] + [os.path.join(root, d) for d in sorted(os.listdir(root))]
    for d in candidates:
        if os.path.basename(d) in ("target", ".git") or not os.path.isdir(d):
            continue
        src = os.path.join(d, "src")
        if os.path.isfile(os.path.join(d, "Cargo.toml")) and (
            os.path.isfile(os.path.join(src, "lib.rs")) or os.path.isfile(os.path.join(src, "main.rs"))
        ):
            crates.append(Crate(root, src))
    return crates


# The layers of a crate, bottom up: a file may import from its own layer and the ones below,
# never from one above. A layer is a list of files and folders (a folder: every file under it).
LAYERS: dict[str, list[tuple[str, list[str]]]] = {
    "observe-runtime/src": [
        ("leaves", [
            "capture.rs", "clock.rs", "diagnostics.rs", "ids.rs", "mask.rs", "media.rs", "percent.rs",
            "python_json.rs", "unobserved.rs",
        ]),
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
        ("front doors", ["lib.rs", "private.rs"]),
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


def layer_of(layers: list[tuple[str, list[str]]], path: str) -> int | None:
    for rank, (_, members) in enumerate(layers):
        for member in members:
            if path == member or (member.endswith("/") and path.startswith(member)):
                return rank
    return None


def layer_violations(crate_name: str, files, edges) -> list[str]:
    layers = LAYERS.get(crate_name)
    if layers is None:
        return []
    problems = []
    for f in sorted(files):
        if layer_of(layers, f) is None:
            problems.append(f"{crate_name}/{f} belongs to no layer (add it to LAYERS in this script)")
    for (a, b), names in sorted(edges.items()):
        ra, rb = layer_of(layers, a), layer_of(layers, b)
        if ra is not None and rb is not None and rb > ra:
            problems.append(
                f"{crate_name}/{a} ({layers[ra][0]}) imports from {b} ({layers[rb][0]}), a higher "
                f"layer: {', '.join(names)}"
            )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root = os.path.abspath(argv[1] if len(argv) == 2 else os.path.join(os.path.dirname(__file__), ".."))
    if not os.path.isdir(root):
        print(f"module cycles: {root} is not a folder", file=sys.stderr)
        return 2
    crates = find_crates(root)
    if not crates:
        print(f"module cycles: no crate (*/src/lib.rs) under {root}", file=sys.stderr)
        return 2

    total_files = total_edges = 0
    cycles = []  # (crate, component, edges)
    notes: list[str] = []
    upward: list[str] = []
    for crate in crates:
        crate.build()
        unresolved: list[str] = []
        edges = crate.edges(unresolved)
        notes += [f"{crate.name}/{n}" for n in crate.notes]
        notes += [f"{crate.name}/{n}" for n in dict.fromkeys(unresolved)]
        nodes = sorted(crate.files)
        succ: dict[str, list[str]] = {}
        for a, b in sorted(edges):
            succ.setdefault(a, []).append(b)
        total_files += len(nodes)
        total_edges += len(edges)
        upward += layer_violations(crate.name, crate.files, edges)
        for comp in tarjan(nodes, succ):
            if len(comp) > 1:
                cycles.append((crate, comp, edges, succ))

    for crate, comp, edges, succ in cycles:
        members = set(comp)
        print(f"module cycle in {crate.name}: {len(comp)} files")
        for f in comp:
            print(f"    {f}")
        print("  imports inside the cycle:")
        for (a, b), names in sorted(edges.items()):
            if a in members and b in members:
                print(f"    {a} -> {b}: {', '.join(names)}")
        print(f"  shortest loop from {comp[0]}: {' -> '.join(shortest_loop(comp[0], members, succ))}")
        print()
    if notes:
        print("module cycles: notes (not errors):", file=sys.stderr)
        for n in notes:
            print(f"  {n}", file=sys.stderr)
    for problem in upward:
        print(f"layer: {problem}")
    if upward:
        print(f"module layers: {len(upward)} import(s) against the layering")
    if cycles:
        files = sum(len(c[1]) for c in cycles)
        print(
            f"module cycles: {len(cycles)} cycle(s) covering {files} files "
            f"({total_files} files, {total_edges} import edges)"
        )
        return 1
    if upward:
        return 1
    print(
        f"module cycles: none, and no import against the layers ({total_files} files, "
        f"{total_edges} import edges)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
