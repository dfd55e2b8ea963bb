"""The install files agree with each other and with what the code relies on."""
import importlib.metadata
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def _read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()

#----------------------------------------------------------------------------

def test_clean_fid_is_pinned_to_the_installed_version_everywhere():
    # metrics/inception.py subclasses clean-fid's InceptionV3W and sets its private attributes: one known version.
    pins = re.findall(r'clean-fid==([\w.]+)', _read('pyproject.toml')) + re.findall(r'clean-fid==([\w.]+)', _read('environment.yml'))
    assert len(pins) == 2 and pins[0] == pins[1] == importlib.metadata.version('clean-fid')


def test_environment_uses_conda_forge_only_and_no_unused_build_tools():
    env = _read('environment.yml')
    channels = re.search(r'channels:\n((?:\s+-\s*\S+\n)+)', env).group(1).split()
    assert [c for c in channels if c != '-'] == ['conda-forge']
    assert 'pytorch-gpu' in env and 'pytorch-cuda' not in env
    assert 'ninja' not in env and 'ninja' not in _read('pyproject.toml')      # no C++/CUDA extension is built
    assert '<3.14' in re.search(r'requires-python = "([^"]+)"', _read('pyproject.toml')).group(1)

#----------------------------------------------------------------------------
