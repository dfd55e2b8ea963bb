"""Files written safely: atomic writes, the temp names they use and the sweep of stale ones a killed run left,
and the cache folder. The lowest module of dnnlib (url.py and util.py build on it)."""
import contextlib
import os
import re
import shutil
import tempfile

#----------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb', durable: bool = False):
    """Write `path` through a temp file in the same folder, renamed over `path` only when the block ends
    without error: a killed or failed write never leaves a truncated file. durable=True also fsyncs the
    data and the folder (snapshots). The file gets the usual permissions (umask), not mkstemp's 0600."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix='.tmp', dir=folder)
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

# Our temp names: ".<name>.cggan-<pid>-<8 mkstemp characters>.tmp" (atomic_write, the dataset writer). Older
# versions wrote ".network-snapshot-NNNNNN.pt.<8>.tmp", ".seedNNNN.png.<8>.tmp" (and other generate.py
# images), "fakesNNNNNN.png.tmp<pid>.png" (and reals, fakes_init) and "training_options.json.tmp<pid>".
TEMP_NAME_RE = re.compile(r'^\..+\.cggan-(?P<pid>\d+)-[a-z0-9_]{8}\.tmp$')
LEGACY_TEMP_NAME_RES = (
    re.compile(r'^\.network-snapshot-\d{6}\.pt\.[a-z0-9_]{8}\.tmp$'),
    re.compile(r'^\.(seed\d{4,}|grid|swap-grid|swap-style-.+|traverse-dim\d+)\.png\.[a-z0-9_]{8}\.tmp$'),
    re.compile(r'^(fakes\d{6}|fakes_init|reals)\.png\.tmp(?P<pid>\d+)\.png$'),
    re.compile(r'^training_options\.json\.tmp(?P<pid>\d+)$'),
)


def temp_prefix(path: str) -> str:
    """mkstemp/mkdtemp prefix of a temp file for `path` (suffix '.tmp'): hidden, names the writer's pid."""
    return f'.{os.path.basename(path)}.cggan-{os.getpid()}-'


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's live process (or a pid we cannot ask about): keep its file
    return True


def is_stale_temp_name(name: str) -> bool:
    """Whether `name` is a temp file of this code whose writer is no longer running (on this machine)."""
    m = TEMP_NAME_RE.match(name)
    if m is None:
        m = next((r.match(name) for r in LEGACY_TEMP_NAME_RES if r.match(name)), None)
        if m is None:
            return False
    pid = m.groupdict().get('pid')
    return pid is None or not _pid_running(int(pid))


def remove_stale_temp_files(folder: str, depth: int = 0) -> list:
    """Delete what killed processes of this code left in `folder` (and `depth` levels of sub-folders,
    symlinks never followed): only entries named by our temp naming whose writer is gone. Returns the
    removed paths; entries that cannot be removed are left alone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if is_stale_temp_name(entry.name):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.remove(entry.path)
                removed.append(entry.path)
            elif depth > 0 and entry.is_dir(follow_symlinks=False):
                removed += remove_stale_temp_files(entry.path, depth - 1)
        except OSError:
            pass
    return removed


#----------------------------------------------------------------------------

def make_cache_dir_path(*paths: str) -> str:
    """Cache folder: $CGGAN_CACHE_DIR, else $XDG_CACHE_HOME/cggan, else ~/.cache/cggan."""
    root = os.environ.get('CGGAN_CACHE_DIR')
    if root is None:
        root = os.path.join(os.environ.get('XDG_CACHE_HOME', os.path.join(os.path.expanduser('~'), '.cache')), 'cggan')
    return os.path.join(root, *paths)


#----------------------------------------------------------------------------
