"""The project's import graph, read from the source (every import statement, those inside functions too):
no two modules import each other, and no module imports a command-line script (scripts import libraries,
never each other). legacy.py is NVIDIA's library module at the top level, not a script."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY_AT_TOP = {'legacy'}
# The one circle kept on purpose: a plain pickle.load of an NVIDIA pickle calls persistence's reducer, which
# rebuilds the network through legacy's allow-list (legacy is the only home of that list); legacy in turn
# reads persistence's specs. Both imports sit inside functions, so neither module needs the other to load.
ALLOWED_CIRCLES = {frozenset({'legacy', 'torch_utils.persistence'})}

#----------------------------------------------------------------------------

def _modules() -> dict:
    """module name -> path, for the packages and top-level files of the project (tests excluded)."""
    mods = {}
    for entry in sorted(os.listdir(ROOT)):
        path = os.path.join(ROOT, entry)
        if entry.endswith('.py'):
            mods[entry[:-3]] = path
        elif os.path.isfile(os.path.join(path, '__init__.py')) and entry != 'tests':
            for folder, _dirs, files in os.walk(path):
                for name in files:
                    if name.endswith('.py'):
                        rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].replace(os.sep, '.')
                        mods[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = os.path.join(folder, name)
    return mods


def _imports(name: str, path: str, mods: dict) -> set:
    """The project modules `name` imports (a package's own submodules included)."""
    out = set()
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            targets = [base] + [f'{base}.{a.name}' for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition('.')[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}

#----------------------------------------------------------------------------

def test_graph_reader_sees_relative_function_level_and_package_imports():
    g = _graph()
    assert 'dnnlib.files' in g['dnnlib.url']                 # from . import files
    assert 'synthetic_study.runner' in g['synthetic_study.cli']  # imported inside a command
    assert 'torch_utils.persistence' in g['legacy']           # inside a function
    assert 'legacy' in g['train']


def test_no_two_modules_import_each_other():
    g = _graph()
    circles = {frozenset({a, b}) for a, deps in g.items() for b in deps if a in g.get(b, ())}
    assert circles - ALLOWED_CIRCLES == set(), f'import circles: {sorted(sorted(c) for c in circles - ALLOWED_CIRCLES)}'


def test_no_module_imports_a_script():
    g = _graph()
    scripts = {name for name in g if '.' not in name and not os.path.isdir(os.path.join(ROOT, name))} - LIBRARY_AT_TOP
    used = sorted((a, b) for a, deps in g.items() for b in deps if b in scripts)
    assert used == [], f'scripts imported as libraries: {used}'

#----------------------------------------------------------------------------
