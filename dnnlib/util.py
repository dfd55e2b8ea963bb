"""EasyDict, building objects by dotted class name, option checks and NVIDIA's names for the file helpers
(dnnlib/files.py) and cached URL opening (dnnlib/url.py)."""
import importlib

from .files import (LEGACY_TEMP_NAME_RES, TEMP_NAME_RE, atomic_write, is_stale_temp_name, make_cache_dir_path,  # noqa: F401
                    remove_stale_temp_files, temp_prefix)
from .url import open_url  # noqa: F401

#----------------------------------------------------------------------------

class EasyDict(dict):
    """A dict whose items can also be read and written as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]

#----------------------------------------------------------------------------

def get_obj_by_name(name: str):
    """Resolve 'package.module.attr' to the object it names."""
    module_name, _, attr = name.rpartition('.')
    if not module_name:
        raise ValueError(f'"{name}" is not a dotted name of the form module.attr')
    return getattr(importlib.import_module(module_name), attr)


def call_func_by_name(*args, func_name: str, **kwargs):
    return get_obj_by_name(func_name)(*args, **kwargs)


def construct_class_by_name(*args, class_name: str, **kwargs):
    """Instantiate the class named by its dotted path, e.g. 'training.networks.Generator'."""
    return call_func_by_name(*args, func_name=class_name, **kwargs)

#----------------------------------------------------------------------------

def check_finite_options():
    """In a click command: a usage error (exit 2) for any float option that is NaN or infinite, which
    click's FloatRange lets through (nan compares false with every bound)."""
    import math
    import click
    ctx = click.get_current_context()
    for name, value in ctx.params.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise click.BadParameter(f'{value} is not a finite number.', ctx=ctx, param_hint=f'--{name.replace("_", "-")}')

#----------------------------------------------------------------------------

def format_time(seconds: float) -> str:
    """NVIDIA's human-readable duration: 42s, 3m 07s, 2h 05m 09s."""
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m {s % 60:02d}s'
    return f'{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s'
