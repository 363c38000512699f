"""What ``pip install anomalib-fastflow`` gives: every import declared, every module importable without
the extras, a one-line message where an extra is missing, the version and the shipped configs.

The built wheel in a clean environment is checked by ``.ci/clean_install`` (``make clean-install``).
"""

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import anomalib_fastflow
from anomalib_fastflow import cli
from anomalib_fastflow.extras import EXTRAS, MissingExtraError, require
from anomalib_fastflow.packaged_configs import config_files, config_folder

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "anomalib_fastflow"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(requirement).name) for requirement in requirements}


def _installed_closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, transitively, as installed here (no extras)."""
    closure, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in map(Requirement, requirements):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return closure


CORE = _names(PROJECT["dependencies"])
EXTRA_DISTRIBUTIONS = {
    extra: _names(requirements) for extra, requirements in PROJECT["optional-dependencies"].items()
}
# what a user without extras lacks: the extras' distributions that no core dependency brings
OPTIONAL = set().union(*EXTRA_DISTRIBUTIONS.values()) - _installed_closure(CORE) - {"anomalib-fastflow"}


def _module_imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported when the module loads) for each absolute import of a source file."""
    tree = ast.parse(path.read_text())
    lazy: set[int] = set()
    for node in ast.walk(tree):  # imports inside functions, or under ``if TYPE_CHECKING``, run later or never
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or (
            isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        ):
            lazy.update(id(child) for child in ast.walk(node) if child is not node)
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [(alias.name.split(".")[0], id(node) not in lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imports.append((node.module.split(".")[0], id(node) not in lazy))
    return imports


def _distribution(module: str) -> str:
    """The distribution that installs ``module`` (its own name when it is not installed here)."""
    distributions = importlib.metadata.packages_distributions().get(module, [module])
    return canonicalize_name(distributions[0])


def test_declared_dependencies_cover_every_import() -> None:
    """Imports at module load come from core dependencies; lazy ones from core or an extra that
    ``extras.EXTRAS`` names, so that ``require`` can say what to install."""
    undeclared, optional_at_load, unnamed = [], [], []
    extra_modules = {module for modules in EXTRAS.values() for module in modules}
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, at_load in _module_imports(path):
            if module in sys.stdlib_module_names or module == "anomalib_fastflow":
                continue
            where = f"{path.relative_to(ROOT)}: {module}"
            distribution = _distribution(module)
            if distribution not in CORE | set().union(*EXTRA_DISTRIBUTIONS.values()):
                undeclared.append(where)
            elif distribution not in CORE and at_load:
                optional_at_load.append(where)
            elif distribution not in CORE and module not in extra_modules:
                unnamed.append(where)
    assert not undeclared, f"imports of packages pyproject.toml does not declare: {undeclared}"
    assert not optional_at_load, f"extras' packages imported when the module loads: {optional_at_load}"
    assert not unnamed, f"extras' packages missing from extras.EXTRAS: {unnamed}"


def test_extras_name_only_their_own_packages() -> None:
    """Each module ``extras.EXTRAS`` lists under an extra is installed by that extra's distributions."""
    for extra, modules in EXTRAS.items():
        for module in modules:
            assert _distribution(module) in EXTRA_DISTRIBUTIONS[extra], f"{module} is not in extra {extra!r}"


def _optional_modules() -> list[str]:
    """Top-level import names of every distribution that only an extra installs."""
    modules = {module for modules in EXTRAS.values() for module in modules}
    for module, distributions in importlib.metadata.packages_distributions().items():
        if any(canonicalize_name(name) in OPTIONAL for name in distributions) and module.isidentifier():
            modules.add(module)
    return sorted(modules)


def test_every_module_and_the_cli_work_without_the_extras(tmp_path: Path) -> None:
    """With every extra's package made unimportable: all modules import, ``--help`` works, and export
    exits with one line naming the extra to install."""
    script = f"""
import pkgutil, sys, importlib
for name in {_optional_modules()!r}:
    sys.modules[name] = None
import anomalib_fastflow
for module in pkgutil.walk_packages(anomalib_fastflow.__path__, "anomalib_fastflow."):
    importlib.import_module(module.name)
from anomalib_fastflow import cli
try:
    cli.main(["--help"])
except SystemExit as exit:
    assert exit.code == 0, exit.code
cli.main(["export", "--ckpt_path", "missing.ckpt", "--data_root", ".", "--category", "x", "--formats", "[onnx]"])
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "usage:" in result.stdout and "export" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("anomalib-fastflow: Export to onnx needs onnx, onnxruntime, onnxscript"), (
        lines
    )
    assert lines[-1].endswith('pip install "anomalib-fastflow[export]"'), lines
    assert "Traceback" not in result.stderr


def test_require_names_the_missing_module_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(
        MissingExtraError, match=r'^Running x needs openvino: pip install "anomalib-fastflow\[export\]"$'
    ):
        require("export", ["onnx", "openvino"], "Running x")
    with pytest.raises(ValueError, match="does not bring"):
        require("tensorrt", ["openvino"], "Running x")


def test_version_matches_pyproject_metadata_and_the_changelog(capsys: pytest.CaptureFixture[str]) -> None:
    """``__version__`` is the installed metadata's version and the newest release in CHANGELOG.md."""
    assert anomalib_fastflow.__version__ == importlib.metadata.version("anomalib-fastflow")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert releases and releases[0] == anomalib_fastflow.__version__, releases[:3]
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"anomalib-fastflow {anomalib_fastflow.__version__}"


def test_configs_ship_in_the_package_and_copy_out(tmp_path: Path) -> None:
    """The repository's ``configs/`` is the package's config folder; the command lists and copies them."""
    shipped = {path.relative_to(config_folder()) for path in config_files()}
    in_repository = {path.relative_to(ROOT / "configs") for path in (ROOT / "configs").rglob("*.yaml")}
    assert shipped == in_repository and Path("fastflow_resnet18.yaml") in shipped
    [copy] = config_files(["benchmark/quick"], tmp_path)
    assert copy == tmp_path / "benchmark" / "quick.yaml"
    assert copy.read_text() == (ROOT / "configs" / "benchmark" / "quick.yaml").read_text()
    with pytest.raises(ValueError, match="fastflow_resnet18"):
        config_files(["fastflow_resnet"])


def test_the_command_starts_without_third_party_warnings(tmp_path: Path) -> None:
    command = [str(Path(sys.executable).parent / "anomalib-fastflow"), "--help"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False)
    assert result.returncode == 0 and result.stdout.startswith("usage:")
    assert "Warning" not in result.stderr, result.stderr[-2000:]


def test_the_commands_filters_hide_the_two_third_party_deprecations_only() -> None:
    from anomalib_fastflow import quiet

    def shown(message: str, module: str) -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet.filter_third_party_deprecations()
            warnings.warn_explicit(message, FutureWarning, "x.py", 1, module=module)
        return bool(caught)

    timm = "Importing from timm.models.layers is deprecated, please import via timm.layers"
    assert not shown(timm, "timm.models.layers")
    assert shown(timm, "anomalib_fastflow.backbones")  # the same words from our code are shown
    assert shown("something else is deprecated", "timm.models.layers")
