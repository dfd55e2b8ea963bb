"""Every repository path a doc, help text or docstring cites exists: `docs/...`, `tools/...`, `training/...` (and
the other top-level folders of this repository) and relative Markdown links. URLs, other repositories' paths
and placeholders such as `runs/00000-...` are not paths of this repository and are not matched."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ('docs', 'tools', 'training', 'metrics', 'torch_utils', 'datasets', 'tests', 'synthetic_study', 'dnnlib')
EXTENSIONS = ('md', 'py', 'txt', 'json', 'jsonl', 'png', 'yml', 'toml', 'csv')
# A path starts a word (not inside a URL or another path) in one of our folders and ends in a file extension.
CITED = re.compile(rf'(?<![\w./-])((?:{"|".join(FOLDERS)})/[\w./-]*?\w\.(?:{"|".join(EXTENSIONS)}))(?![\w-])')
LINK = re.compile(r'\]\(([^)\s#:]+)(?:#[^)]*)?\)')          # [text](relative/path) in Markdown, no URLs


def checked_in_files():
    """The files of the working tree that git tracks (untracked local notes are not the repository's)."""
    try:
        out = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split('\n')
    except (OSError, subprocess.CalledProcessError):
        out = [os.path.relpath(os.path.join(d, f), ROOT) for d, dirs, files in os.walk(ROOT)
               for f in files if not any(part.startswith('.') for part in os.path.relpath(d, ROOT).split(os.sep) if part != '.')]
    return [f for f in out if f.endswith(('.py', '.md', '.txt')) and os.path.isfile(os.path.join(ROOT, f))]


def citations(name, text):
    """(cited path relative to the repository root) for every path and Markdown link in one file's text."""
    found = [m.group(1) for m in CITED.finditer(text)]
    if name.endswith('.md'):
        found += [os.path.normpath(os.path.join(os.path.dirname(name), m.group(1))) for m in LINK.finditer(text)]
    return found

#----------------------------------------------------------------------------

def test_the_pattern_matches_repository_paths_only():
    text = ('see docs/method.md. Code: `training/cg_regularizers.py`, results in docs/figures/synthetic_results.jsonl; '
            'https://github.com/NVlabs/stylegan2-ada-pytorch/blob/main/docs/train-help.txt and runs/00000-x/network-snapshot-000400.pt, '
            'and a folder docs/ alone')
    assert citations('x.py', text) == ['docs/method.md', 'training/cg_regularizers.py', 'docs/figures/synthetic_results.jsonl']
    assert citations('docs/cg-gan.md', '[results](cg-gan-results.md), [NVIDIA](https://nvlabs.github.io/x.md), [top](#top)') == ['docs/cg-gan-results.md']


def test_every_cited_path_exists():
    cited, missing = set(), []
    for name in checked_in_files():
        with open(os.path.join(ROOT, name), errors='replace') as f:
            for path in citations(name, f.read()):
                cited.add(path)
                if not os.path.exists(os.path.join(ROOT, path)):
                    missing.append(f'{name} cites {path}')
    assert not missing, 'paths cited but not in the repository:\n' + '\n'.join(missing)
    assert len(cited) > 30 and 'docs/method.md' in cited                          # the walk really read the docs
