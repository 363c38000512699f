"""The package's layers point one way: each module imports only from its own layer or those below it,
and no import cycle runs between its modules (README, "How it is built")."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "anomalib_fastflow"

# lowest first; a module takes the layer of its longest listed prefix
LAYERS = {
    "geometry": 1,
    "hardware": 1,
    "checkpoint": 1,
    "errors": 1,
    "extras": 1,
    "packaged_configs": 1,
    "timing": 1,
    "metrics": 1,
    "quiet": 1,
    "removed_options": 1,
    "provenance": 1,
    "data": 2,
    "backbones": 3,
    "flow": 3,
    "torch_model": 3,
    "anomaly_map": 3,
    "loss": 3,
    "post_processor": 3,
    "patch_features": 3,
    "channel_permutation": 3,
    "training": 4,
    "lightning_model": 5,
    "export": 6,
    "benchmark": 7,
    "report": 7,
    "demo": 7,
    "cli": 8,
    "": 8,  # the package itself: its public names
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    matches = [
        prefix for prefix in LAYERS if module == prefix or module.startswith(f"{prefix}.") or prefix == ""
    ]
    return LAYERS[max(matches, key=len)]


def _imports() -> dict[str, set[str]]:
    """Each module of the package (dotted, relative to it) -> the package's modules it imports."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                stem = [*base, *([node.module] if node.module else [])]
                names = [".".join([*stem, alias.name]) for alias in node.names]
                targets.update(name if name in modules else ".".join(stem) for name in names)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in names:
                    if name and name.split(".")[0] == "anomalib_fastflow":
                        targets.add(name.removeprefix("anomalib_fastflow").lstrip("."))
        graph[module] = {target for target in targets if target != module}
    return graph


def test_every_module_has_a_layer() -> None:
    graph = _imports()
    assert all(_layer(module) for module in graph)
    assert {"training.budget", "data.disturbed", "geometry", "lightning_model"} <= set(graph)


def test_no_import_runs_from_a_lower_layer_to_a_higher_one() -> None:
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _imports().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, upward


def test_data_imports_no_training_module() -> None:
    graph = _imports()
    assert not {
        target
        for module in graph
        if module.startswith("data")
        for target in graph[module]
        if target.startswith("training")
    }


def test_no_import_cycle() -> None:
    graph = _imports()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                raise AssertionError(f"import cycle: {' -> '.join([*path, module, target])}")
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
