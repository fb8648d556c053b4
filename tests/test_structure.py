"""Package boundaries: dependencies point one way (dctload <- nets, dctload <- bench), the
models load no data loader, dctload's modules import each other without cycles, and
each model registers itself in its own file."""

from __future__ import annotations

import ast
import inspect
import pathlib
import subprocess
import sys

import pytest

import nets

ROOT = pathlib.Path(__file__).resolve().parents[1]


def imports(path: pathlib.Path, package: str) -> set[str]:
    """Absolute names of the modules ``path`` imports, at any depth (lazy imports too)."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        module = module.removesuffix(".__init__")
        here = module
    else:
        here = module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            name = node.module if node.level == 0 else ".".join(filter(None, [base, node.module]))
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return found


def sources(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_dctload_never_imports_nets_or_bench():
    for path in sources("dctload"):
        wrong = {name for name in imports(path, "dctload") if name.split(".")[0] in ("nets", "bench")}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_at_run_time_dctload_loads_neither_nets_nor_bench():
    """Every dctload module imported, and the command's help listed: no module of nets or
    bench in the process (string imports and entry points included)."""
    script = ("import pkgutil, importlib, sys, dctload, dctload.cli\n"
              "for m in pkgutil.walk_packages(dctload.__path__, 'dctload.'):\n"
              "    if not m.name.endswith('__main__'):\n"
              "        importlib.import_module(m.name)\n"
              "dctload.cli.main(['--help'])\n"
              "print('MODULES', ' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=ROOT / "tests").stdout
    assert "(from nets.train" in out  # the help lists the plugins' commands without loading them
    loaded = out.rsplit("MODULES ", 1)[1].split()
    assert "dctload.loaders.dali" in loaded and "dctload.cli" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("nets", "bench")]


def test_models_import_no_loader_and_import_nets_loads_none():
    loading = ("dctload.loaders", "dctload.folder", "dctload.fused", "dctload.recipe", "dctload.packets",
               "nvidia.dali", "bench")
    for path in sources("nets"):
        if path.name in ("train.py", "evaluate.py", "codecs.py"):  # the training scripts are the loaders' users
            continue
        wrong = {name for name in imports(path, "nets") if name.startswith(loading)}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
    loaded = subprocess.run([sys.executable, "-c", "import sys, nets; print(' '.join(sorted(sys.modules)))"],
                            capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert not [m for m in loaded if m.startswith(loading)], [m for m in loaded if m.startswith(loading)]


def test_dctload_modules_import_each_other_without_cycles():
    graph = {}
    for path in sources("dctload"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = {m for m in imports(path, "dctload") if m.startswith("dctload")}
    modules = set(graph)

    def resolve(name):  # "dctload.transforms.Compose" -> "dctload.transforms"
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges = {m: {resolve(n) for n in targets} - {m, "dctload", ""} for m, targets in graph.items()}
    # a package's __init__ and its own submodules belong together
    edges = {m: {t for t in ts if not (t.startswith(m + ".") or m.startswith(t + "."))} for m, ts in edges.items()}
    state = {}

    def visit(m, trail):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(trail + [m])
        state[m] = "open"
        for t in sorted(edges.get(m, ())):
            visit(t, trail + [m])
        state[m] = "done"

    for m in sorted(edges):
        visit(m, [])


def test_each_model_registers_itself_where_it_is_defined():
    for name in nets.list_models():
        builder = nets.registry._MODELS[name].builder
        source, _ = inspect.getsourcelines(builder)
        assert source[0].startswith("@register_model(input="), (name, source[0])
    assert nets.list_models("rgb") == ["resnet50"] and "late_concat_rfa_thinner" in nets.list_models("dct")
    assert nets.model_input("resnet50") == "rgb" and nets.is_dct_model("upsampling")


def test_a_new_variant_in_its_own_file_is_one_decorator(monkeypatch):
    from torch import nn

    monkeypatch.setattr(nets.registry, "_MODELS", dict(nets.registry._MODELS))

    @nets.register_model(input="dct")
    def tiny_dct(num_classes=1000, in_channels=(64, 128)):
        return nn.Linear(sum(in_channels), num_classes)

    assert "tiny_dct" in nets.list_models("dct")
    assert nets.create_model("tiny_dct", num_classes=3, channels="dctnet24").in_features == 16 + 8
    with pytest.raises(ValueError, match="already registered"):
        nets.register_model(input="dct", name="tiny_dct")(lambda **kwargs: None)
    with pytest.raises(ValueError, match="input must be"):
        nets.register_model(input="yuv")
    with pytest.raises(ValueError, match="takes RGB input"):
        nets.create_model("resnet50", channels="dctnet24")
