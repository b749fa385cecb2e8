"""The package's imports run one way: from the tools and the engine down to checkpoints,
the inference runtime, config, data, device and models (README, "Architecture")."""
import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "paddle_resnet")


def module_name(path: str) -> str:
    relative = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return relative[:-len(".__init__")] if relative.endswith(".__init__") else relative


def package_modules():
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found[module_name(path)] = path
    return found


def imports_of(name: str, path: str, known) -> set:
    """The package modules `name` imports anywhere in its file (late imports too)."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:  # `from . import checkpoint` names a module
                candidate = f"{base}.{alias.name}"
                targets.add(candidate if candidate in known else base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "NamesOf"
              and node.args and isinstance(node.args[0], ast.Constant)):
            targets.add(node.args[0].value)  # schema.py's choices, read from a table later
    return {t for t in targets if t in known and t != name}


def import_graph():
    known = package_modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    # A package's __init__ runs before its modules; it is not a layer of its own.
    return {name: {t for t in targets if t != "paddle_resnet"} for name, targets in graph.items()}


def reachable(graph, start):
    seen, todo = set(), list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def unit(name: str) -> str:
    """A top-level module, or a subpackage (engine, data, models) as one unit."""
    return ".".join(name.split(".")[:2])


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert not cycles, cycles
    # The same between units: export.py importing engine/ while engine/ imports export.py
    # is a cycle although no single module of engine/ imports export.py back.
    units = {}
    for name, targets in graph.items():
        units.setdefault(unit(name), set()).update(unit(t) for t in targets)
    units = {name: targets - {name} for name, targets in units.items()}
    unit_cycles = sorted(name for name in units if name in reachable(units, name))
    assert not unit_cycles, unit_cycles


def test_nothing_the_engine_uses_imports_the_engine():
    graph = import_graph()
    engine = {name for name in graph if name.startswith("paddle_resnet.engine")}
    below = set().union(*(reachable(graph, name) for name in engine)) - engine
    offenders = {name: sorted(graph[name] & engine) for name in below if graph[name] & engine}
    assert not offenders, offenders
    assert {"paddle_resnet.checkpoint", "paddle_resnet.inference"} <= below


def test_the_graph_sees_imports():
    """The checks above would pass on an empty graph: this one would not."""
    graph = import_graph()
    assert "paddle_resnet.checkpoint" in graph["paddle_resnet.engine.trainer"]
    assert "paddle_resnet.inference" in graph["paddle_resnet.engine.eval_engine"]
    assert "paddle_resnet.engine.trainer" in graph["paddle_resnet.cli"]  # a late import
    assert {"paddle_resnet.optim", "paddle_resnet.data.cifar",
            "paddle_resnet.models.resnet"} <= graph["paddle_resnet.schema"]  # NamesOf
