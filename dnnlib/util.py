"""EasyDict, building objects by dotted class name, and cached URL opening."""
import contextlib
import importlib
import os
import tempfile

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

@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb', durable: bool = False):
    """Write `path` through a temp file in the same folder, renamed over `path` only when the block ends
    without error: a killed or failed write never leaves a truncated file. durable=True also fsyncs the
    data and the folder (snapshots). The file gets the usual permissions (umask), not mkstemp's 0600."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if durable:
        try:  # make the rename itself durable (not possible on every platform)
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass

#----------------------------------------------------------------------------

def format_time(seconds: float) -> str:
    """NVIDIA's human-readable duration: 42s, 3m 07s, 2h 05m 09s."""
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m {s % 60:02d}s'
    return f'{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s'

#----------------------------------------------------------------------------

def make_cache_dir_path(*paths: str) -> str:
    """Cache folder: $CGGAN_CACHE_DIR, else $XDG_CACHE_HOME/cggan, else ~/.cache/cggan."""
    root = os.environ.get('CGGAN_CACHE_DIR')
    if root is None:
        root = os.path.join(os.environ.get('XDG_CACHE_HOME', os.path.join(os.path.expanduser('~'), '.cache')), 'cggan')
    return os.path.join(root, *paths)

#----------------------------------------------------------------------------

def open_url(url: str, *args, **kwargs):
    """Open a local path or URL (downloads are cached); see dnnlib/url.py."""
    from .url import open_url as _open_url
    return _open_url(url, *args, **kwargs)
