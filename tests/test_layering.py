"""Dependencies flow one way: the shared definitions (register map, feature-map format, weight
layout, arithmetic) import nothing from hw/, sim/ or boards/, and no module of sw/ but the
command line (the application on top of everything) imports them. Read from the sources' import
statements, so a lazy import inside a function counts too."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ["regs", "fmformat", "layout", "quant"]
LOWER = ("hw", "sim", "boards")


def imported(path):
    """(package, module) pairs a file imports, relative imports resolved inside fmprune."""
    pkg = path.parent.name
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                parts = mod.split(".")
                if parts[0] == "fmprune" and len(parts) > 1:
                    out.add(parts[1])
            elif node.level == 1:
                out.add(pkg)
            else:
                out.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "fmprune" and len(parts) > 1:
                    out.add(parts[1])
    return out


@pytest.mark.parametrize("name", SHARED)
def test_shared_definitions_import_no_gateware(name):
    path = ROOT / "sw" / f"{name}.py"
    bad = imported(path) & set(LOWER)
    assert not bad, f"sw/{name}.py (a shared definition) imports from {sorted(bad)}"
    text = path.read_text()
    assert "amaranth" not in {n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(text))
                              if isinstance(n, ast.Import)} | {
        (n.module or "").split(".")[0] for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)}, \
        f"sw/{name}.py imports Amaranth"


def test_sw_imports_no_gateware_but_the_cli():
    for path in sorted((ROOT / "sw").glob("*.py")):
        if path.name == "cli.py":
            continue
        bad = imported(path) & set(LOWER)
        assert not bad, f"sw/{path.name} imports from {sorted(bad)}: only sw/cli.py may"


def test_gateware_ports_not_from_simulation_models():
    """The engine and the board gateware take their port shapes from hw/ports.py, not from the
    simulation memories (hw/simmem.py)."""
    for path in [ROOT / "hw" / "engine.py", *sorted((ROOT / "boards").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "simmem" not in mods and "hw.simmem" not in mods, f"{path.relative_to(ROOT)} imports hw/simmem.py"


def test_one_block():
    """BLOCK is defined once (sw/fmformat.py); everything else imports it."""
    defs = [p.relative_to(ROOT).as_posix() for d in ("sw", "hw", "sim", "boards") for p in sorted((ROOT / d).glob("*.py"))
            if any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "BLOCK" for t in n.targets)
                   for n in ast.parse(p.read_text()).body)]
    assert defs == ["sw/fmformat.py"], defs


def test_gateware_imports_no_simulation_or_boards():
    """hw/ (the gateware and its model) imports nothing from sim/ or boards/; boards/ nothing
    from sim/: the layers above depend on the ones below, never the other way."""
    for folder, above in (("hw", {"sim", "boards"}), ("boards", {"sim"})):
        for path in sorted((ROOT / folder).glob("*.py")):
            bad = imported(path) & above
            assert not bad, f"{folder}/{path.name} imports from {sorted(bad)}"
