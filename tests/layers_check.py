#!/usr/bin/env python3
"""layers_check.py ROOT - the include graph of the C sources stacks in layers.

Each folder may include its own files and the layers below it, never one
above it; headers under engine/ form no include circle; no line of C is
longer than .clang-format's ColumnLimit. Prints the graph between folders
(with the number of include lines behind each arrow) and fails naming any
arrow that points up, any circle or any long line.
"""
import os
import re
import sys

# Lower layers first; a file may include files of its own layer or below.
LAYERS = [
    ("ffi", ["ffi"]),                      # the public header: includes nothing of ours
    ("floor", ["engine/base"]),            # assertions, errors, hashing, arenas, kernels
    ("log", ["tlog", "tlog/checkpoint", "tlog/repl"]),  # the log, the LMDB checkpoints, replication framing
    ("gpu", ["gpu"]),
    ("engine", ["engine"]),
    ("tools", ["tools"]),                  # the mmsb command
    ("bench", ["bench"]),                  # measures internals directly too
]
# Beyond the layer rule: the tool sees the engine through audit.h only.
NARROW = {"tools": {"engine": {"engine/audit.h"}}}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    folder = os.path.dirname(path)
    for rank, (name, folders) in enumerate(LAYERS):
        if folder in folders:
            return rank, name
    return None, None


def sources(root):
    for top in ("ffi", "engine", "tlog", "gpu", "tools", "bench"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h", ".cu")):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def includes(root, path):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        text = f.read()
    for target in INCLUDE.findall(text):
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if os.path.exists(os.path.join(root, resolved)):
            yield resolved


def circles(graph):
    """Include circles among the headers of graph, by an explicit-stack DFS."""
    found, state = [], {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                found.append(path[path.index(child):] + [child])
            elif child in graph and not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return found


def column_limit(root):
    with open(os.path.join(root, ".clang-format"), encoding="utf-8") as f:
        return int(re.search(r"^ColumnLimit:\s*(\d+)", f.read(), re.M).group(1))


def long_lines(root, paths, limit):
    for path in paths:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if len(line.rstrip("\n")) > limit:
                    yield f"{path}:{number}: {len(line.rstrip())} columns, the limit is {limit}"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    problems, arrows, headers = [], {}, {}
    tests = [os.path.join("tests", f) for f in sorted(os.listdir(os.path.join(root, "tests")))
             if f.endswith((".c", ".h"))]
    problems.extend(long_lines(root, list(sources(root)) + tests, column_limit(root)))
    for path in sources(root):
        rank, name = layer_of(path)
        if rank is None:
            continue
        for target in includes(root, path):
            trank, tname = layer_of(target)
            if trank is None:
                continue
            key = (os.path.dirname(path), os.path.dirname(target))
            arrows[key] = arrows.get(key, 0) + 1
            if trank > rank:
                problems.append(f"{path} includes {target}: {name} may not include {tname}, a layer above it")
            allowed = NARROW.get(name, {}).get(tname)
            if allowed is not None and target not in allowed:
                through = ", ".join(sorted(allowed))
                problems.append(f"{path} includes {target}: {name} sees {tname} only through {through}")
            if path.endswith(".h") and target.endswith(".h"):
                headers.setdefault(path, set()).add(target)
    for circle in circles({h: t for h, t in headers.items() if h.startswith("engine/")}):
        problems.append("include circle: " + " -> ".join(circle))
    print("include graph between folders (include lines):")
    for (src, dst), n in sorted(arrows.items()):
        if src != dst:
            print(f"  {src:18s} -> {dst:18s} {n}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"layers: ok ({len(LAYERS)} layers, no arrow up, no include circle in engine/, no long line)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
