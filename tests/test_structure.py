"""How the code is put together: no import circles, one way to Docker."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, package: str) -> set[str]:
    """Modules of `package` that a module imports when it is itself imported
    (imports inside functions run later, and cannot make a circle)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # "from sessions_app import tasks" imports the module sessions_app.tasks.
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name == package or name.startswith(package + ".")}


def import_graph(package: str) -> dict[str, set[str]]:
    paths = [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    modules = {module_name(path): path for path in paths}
    return {name: top_level_imports(path, package) & set(modules) - {name} for name, path in modules.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return stack[stack.index(imported) :] + [imported]
            if imported not in state and (circle := visit(imported)):
                return circle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (circle := visit(module)):
            return circle
    return None


def test_it_finds_a_circle_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}

    assert find_circle(graph) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_it_has_no_import_circle_among_the_apps_modules():
    for package in ("sessions_app", "terminals", "playground"):
        assert find_circle(import_graph(package)) is None


def test_it_reaches_docker_only_through_the_backend():
    for path in (ROOT / "terminals").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name for name in imported if name == "docker" or name.startswith("docker.")}, path
