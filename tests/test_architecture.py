"""The package's structure: module imports (including those inside functions) form no cycle."""

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "audioattn_sb"


def _module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph():
    """{module: set of audioattn_sb modules it imports} over every .py file of the package."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_find_cycle_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_package_imports_have_no_cycle():
    graph = import_graph()
    assert "audioattn_sb.recipe" in graph and "audioattn_sb.data.corpora" in graph["audioattn_sb.recipe"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


#: README's layers (Architecture): a module imports only modules of lower layers, or of its own
#: layer inside its own subpackage. Longest matching prefix wins.
LAYERS = {
    "audioattn_sb": 0,
    "audioattn_sb.utils": 1, "audioattn_sb.lengths": 1, "audioattn_sb.textgrid": 1,
    "audioattn_sb.run_folder": 1, "audioattn_sb.sb_api": 1,
    "audioattn_sb.attention": 2, "audioattn_sb.augment": 2, "audioattn_sb.training": 2,
    "audioattn_sb.checkpoints": 2,
    "audioattn_sb.metrics": 2, "audioattn_sb.plots": 2, "audioattn_sb.features": 2,
    "audioattn_sb.results": 2,
    "audioattn_sb.data": 2,
    "audioattn_sb.models": 3, "audioattn_sb.brains": 3, "audioattn_sb.data.corpora": 3,
    "audioattn_sb.hparams": 3,
    "audioattn_sb.inspection": 4,
    "audioattn_sb.folds": 5, "audioattn_sb.distill": 5,
    "audioattn_sb.recipe": 6, "audioattn_sb.fold_runner": 6, "audioattn_sb.inspection.cli": 6,
    "audioattn_sb.inference": 6,
}


def _layer(module):
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best], best


def test_imports_go_down_the_readme_layers():
    wrong = []
    for src, deps in import_graph().items():
        (ls, ps) = _layer(src)
        for dst in deps:
            (ld, pd) = _layer(dst)
            same_package = ps == pd and ps != "audioattn_sb"
            if not (ld < ls or (ld == ls and same_package)):
                wrong.append(f"{src} (layer {ls}) imports {dst} (layer {ld})")
    assert not wrong, "\n".join(wrong)


def test_scripts_load_only_what_they_use():
    """README: imports inside functions keep training free of matplotlib/pandas and plotting free
    of SpeechBrain (a fresh interpreter each, as the scripts start)."""
    import subprocess
    import sys

    def loaded(code):
        out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join("
                              "m for m in ('matplotlib', 'pandas', 'speechbrain') "
                              "if m in sys.modules))"],
                             capture_output=True, text=True, check=True, cwd=PKG.parent)
        return set(out.stdout.split())

    training = loaded("import audioattn_sb.recipe, audioattn_sb.brains, audioattn_sb.models.acrnn")
    assert "speechbrain" in training  # the check sees what is loaded
    assert not training & {"matplotlib", "pandas"}
    assert "speechbrain" not in loaded("import audioattn_sb.inspection.cli, audioattn_sb.plots")


def _speechbrain_private_names():
    """The private (single-underscore) attributes of the SpeechBrain classes the package
    builds on."""
    from speechbrain.core import Brain
    from speechbrain.processing.features import InputNormalization
    from speechbrain.utils.checkpoints import Checkpointer

    return {n for cls in (Brain, Checkpointer, InputNormalization) for n in dir(cls)
            if n.startswith("_") and not n.startswith("__")}


def private_imports():
    """``(module, imported module, name)`` for every ``from audioattn_sb.X import _name`` (a
    private name, not a dunder) of another module, inside functions too."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        name = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "audioattn_sb") and node.module != name:
                found += [(name, node.module, a.name) for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_a_private_name_of_another(tmp_path, monkeypatch):
    """Issue 31: a module (inspection included) uses other modules through their public names
    only, so a private helper can change without breaking a caller; the check itself finds
    such an import."""
    assert private_imports() == []
    fake = tmp_path / "audioattn_sb"
    fake.mkdir()
    (fake / "a.py").write_text("def f():\n    from audioattn_sb.b import _helper, ok\n")
    (fake / "b.py").write_text("def _helper(): pass\nok = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", fake)
    assert private_imports() == [("audioattn_sb.a", "audioattn_sb.b", "_helper")]


def test_speechbrain_private_api_is_used_in_one_module():
    """Only audioattn_sb/sb_api.py names a private attribute of SpeechBrain's Brain,
    Checkpointer or InputNormalization (a SpeechBrain upgrade then breaks one module)."""
    from audioattn_sb import sb_api

    private = _speechbrain_private_names()
    assert set(sb_api.PRIVATE_NAMES) <= private   # they are SpeechBrain's (still) private names
    users = {}
    for path in sorted((REPO / "audioattn_sb").rglob("*.py")):
        if path.name == "sb_api.py":
            continue
        text = path.read_text(encoding="utf-8")
        for name in private:
            # an attribute, a getattr string or an overriding method (not a module function
            # of the same name)
            if re.search(rf"(\.|[\"']){re.escape(name)}\b|def {re.escape(name)}\(self", text):
                users.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not users, users


def test_version_check_names_the_supported_range_and_the_fix():
    from audioattn_sb import sb_api

    assert sb_api.check_version() is None            # the installed one is supported
    msg = sb_api.check_version("1.0.3")
    assert "1.0.3" in msg and ">=1.1,<1.2" in msg and "pip install 'speechbrain>=1.1,<1.2'" in msg
    assert sb_api.check_version("2.0") is not None and sb_api.check_version("1.1.9") is None


def test_commands_print_no_torchvision_warning():
    p = subprocess.run([sys.executable, "-c", "import audioattn_sb.brains.base, "
                        "speechbrain.utils.train_logger"], capture_output=True, text=True,
                       cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "torchvision" not in p.stdout + p.stderr



#: the Brain's methods of the forward pass (they must keep no state on the Brain)
FORWARD_METHODS = ("compute_forward", "forward_batch", "forward_with_attention",
                   "compute_objectives")


def self_assignments(source, methods=FORWARD_METHODS):
    """``method: self.attr`` for every assignment to an attribute of ``self`` inside the
    functions named ``methods`` of ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.FunctionDef) and node.name in methods):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign):
                targets = sub.targets
            elif isinstance(sub, (ast.AugAssign, ast.AnnAssign)):
                targets = [sub.target]
            else:
                continue
            for leaf in (n for t in targets for n in ast.walk(t)):
                if (isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name)
                        and leaf.value.id == "self"):
                    found.append(f"{node.name}: self.{leaf.attr}")
    return found


def test_self_assignments_finds_state_kept_by_a_forward_pass():
    src = ("class B:\n    def compute_forward(self, b):\n        self.mix, x = 1, 2\n"
           "        self.n += 1\n        self.a.b = 3\n"
           "    def on_stage_end(self):\n        self.stats = 1\n")
    assert self_assignments(src) == ["compute_forward: self.mix", "compute_forward: self.n",
                                     "compute_forward: self.a"]


def test_no_forward_hooks_and_no_attention_state_on_the_brain():
    """Issue 31: attention leaves the model as a return value (audioattn_sb.attention.output),
    so no module of the package registers a forward hook, and the Brain's forward pass keeps no
    state (its results travel in ForwardOutput): no ``last_attention``, ``self.mix``,
    ``self.teacher_predictions`` anywhere, no ``self.<attribute> =`` in the methods of the forward
    pass."""
    hooks, state, assigned = [], [], []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(REPO))
        for m in re.finditer(r"register_forward(_pre)?_hook|register_module_forward\w*hook", text):
            hooks.append(f"{rel}: {m.group(0)}")
        for m in re.finditer(r"last_attention|self\.mix\b|self\.teacher_predictions\b", text):
            state.append(f"{rel}: {m.group(0)}")
        if path.parent.name == "brains":
            assigned += [f"{rel}: {a}" for a in self_assignments(text)]
    assert not hooks, hooks
    assert not state, state
    assert not assigned, assigned


def test_frame_counts_and_positions_have_one_rule():
    """lengths.py alone turns relative lengths into counts (round(rel · L) in float64) and
    places frames ((2ℓ−1)/(2L)): no other module of the package rounds relative lengths or
    writes the mid-point formula (the re-derivations had different clamps)."""
    rounding = re.compile(r"round\([^)\n]*\b(len|lens|lengths|wav_lens|len_rel)\b")
    midpoint = re.compile(r"2(\.0)?\s*\*\s*\w+\s*-\s*1(\.0)?\)")
    found = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "lengths.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#")[0]
            if ">>>" in code or "``" in code:   # doctests and docstring formulas
                continue
            if rounding.search(code) or midpoint.search(code):
                found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)
    # and the checks see such a line
    assert rounding.search("counts = torch.round(lengths.double() * n)")
    assert midpoint.search("pos = (2.0 * idx - 1.0) / (2.0 * n)")


def test_the_feature_cache_is_built_one_way():
    """Training and inspection build their FeatureCache through FeatureCache.for_hparams only
    (three hand-built variants differed in where the audio went before the features)."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "FeatureCache(" in line and ">>>" not in line and "class FeatureCache" not in line:
                found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)
