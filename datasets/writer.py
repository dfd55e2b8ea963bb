"""Atomic writer of NVIDIA-format data sets: PNGs plus dataset.json, in a folder or an uncompressed zip.

Layout (same as NVIDIA's dataset_tool): image i is `{i:08d}[:5]/img{i:08d}.png`; dataset.json holds
    "labels":  [[relpath, int], ...] or null
    "domains": [name of label 0, name of label 1, ...]          (our extension; others ignore it)
    "factors": {"names": [...], "values": [[relpath, [v, ...]], ...]}  (our extension)
    "cggan_dataset_tool": 1                                      (our marker: this tool wrote it)
Everything is written to a hidden temporary file or folder next to the destination and renamed into
place at the end, so a failed or killed run leaves no partial output (the next run removes what a killed
one left). An existing destination is replaced (--overwrite) only when it is a data set this tool wrote:
its dataset.json has the marker and it holds nothing but our layout.
"""
import io
import json
import os
import re
import shutil
import tempfile
import zipfile

import numpy as np
import PIL.Image

import dnnlib
from .errors import DatasetError

_ZIP_DATE = (1980, 1, 1, 0, 0, 0) # fixed timestamps: the same input gives a byte-identical zip
MARKER = 'cggan_dataset_tool'      # dataset.json key that marks our own output
_OUR_NAME = re.compile(r'^(dataset\.json|\d{5}/|\d{5}/img\d{8}\.png)$')
MAX_META_BYTES = 1 << 30

#----------------------------------------------------------------------------

def is_zip_path(path: str) -> bool:
    return os.path.splitext(path)[1].lower() == '.zip'

#----------------------------------------------------------------------------

def foreign_entry(path: str):
    """None if `path` is a data set this tool wrote (marker in dataset.json, nothing but our layout), else
    a short description of the first thing that is not ours."""
    try:
        if os.path.isdir(path):
            names = []
            for entry in os.scandir(path):
                if entry.is_symlink() or not (entry.is_dir() or entry.name == 'dataset.json'):
                    return f'"{entry.name}"'
                if entry.is_dir():
                    names.append(entry.name + '/')
                    for sub in os.scandir(entry.path):
                        if sub.is_symlink() or not sub.is_file():
                            return f'"{entry.name}/{sub.name}"'
                        names.append(f'{entry.name}/{sub.name}')
                else:
                    names.append(entry.name)
            meta_path = os.path.join(path, 'dataset.json')
            if not os.path.isfile(meta_path) or os.path.getsize(meta_path) > MAX_META_BYTES:
                return 'no dataset.json of ours'
            with open(meta_path, 'rb') as f:
                raw = f.read()
        else:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                info = z.getinfo('dataset.json') if 'dataset.json' in names else None
                if info is None or info.file_size > MAX_META_BYTES or info.compress_type != zipfile.ZIP_STORED:
                    return 'no dataset.json of ours'
                raw = z.read('dataset.json')
        meta = json.loads(raw)
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        return f'unreadable content ({type(e).__name__})'
    if not isinstance(meta, dict) or meta.get(MARKER) != 1:
        return 'a dataset.json without our marker'
    foreign = next((n for n in names if not _OUR_NAME.match(n)), None)
    return f'"{foreign}"' if foreign is not None else None


def check_dest(dest: str, overwrite: bool = False, source: str = None) -> None:
    """Fail early, before any work, when the destination is taken, is the source or holds it, or (with
    --overwrite) holds anything this tool did not write."""
    if not dest:
        raise DatasetError('--dest is empty; give an output folder or a .zip path.')
    real = os.path.realpath(dest)
    if source is not None and os.path.exists(source):
        src = os.path.realpath(source)
        if real == src:
            raise DatasetError(f'--dest "{dest}" is the --source; write the data set to another path.')
        if src.startswith(real.rstrip(os.sep) + os.sep):
            raise DatasetError(f'--dest "{dest}" contains the --source "{source}"; replacing it would delete the source, '
                               'so write the data set elsewhere.')
    if os.path.islink(dest):
        raise DatasetError(f'--dest "{dest}" is a symbolic link; give the real path of a new folder or .zip.')
    if os.path.isdir(dest):
        if not os.listdir(dest):
            return
        if not overwrite:
            raise DatasetError(f'--dest "{dest}" exists and is not empty; choose another path or pass --overwrite.')
    elif os.path.exists(dest):
        if not is_zip_path(dest) and not overwrite:
            raise DatasetError(f'--dest "{dest}" is an existing file; give a folder or a .zip path.')
        if os.path.getsize(dest) == 0:
            return
        if not overwrite:
            raise DatasetError(f'--dest "{dest}" exists and is not empty; choose another path or pass --overwrite.')
    else:
        return
    foreign = foreign_entry(dest) if os.path.isdir(dest) == (not is_zip_path(dest)) else 'another kind of file'
    if foreign is not None:
        raise DatasetError(f'--dest "{dest}" is not a data set written by this tool (it holds {foreign}); --overwrite '
                           'replaces only those, so choose another path or delete it yourself.')

#----------------------------------------------------------------------------

def encode_png(img) -> bytes:
    """PNG bytes of a PIL image or a uint8 HW / HWC (C = 1 or 3) array."""
    if isinstance(img, np.ndarray):
        img = PIL.Image.fromarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)
    buf = io.BytesIO()
    img.save(buf, format='png', compress_level=6)
    return buf.getvalue()

#----------------------------------------------------------------------------

class DatasetWriter:
    """Use as a context manager; `commit()` is called on a clean exit, the temporary output removed otherwise."""

    def __init__(self, dest: str, overwrite: bool = False, source: str = None):
        check_dest(dest, overwrite, source)
        self.dest = os.path.abspath(dest)
        self.overwrite = overwrite
        self.is_zip = is_zip_path(dest)
        parent = os.path.dirname(self.dest)
        prefix = dnnlib.util.temp_prefix(self.dest)
        self._tmp = self._zip = None
        try:
            os.makedirs(parent, exist_ok=True)
            dnnlib.util.remove_stale_temp_files(parent)  # what a killed run of this tool left next to its output
            if self.is_zip:
                fd, self._tmp = tempfile.mkstemp(dir=parent, prefix=prefix, suffix='.tmp')
                self._zip = zipfile.ZipFile(os.fdopen(fd, 'wb'), mode='w', compression=zipfile.ZIP_STORED)
            else:
                self._tmp = tempfile.mkdtemp(dir=parent, prefix=prefix, suffix='.tmp')
        except OSError as e:
            self.abort()
            raise DatasetError(f'Cannot write --dest "{dest}" ({e.strerror or e}); choose a folder you can write to.') from None
        self.labels = []
        self.factor_values = []
        self.num_images = 0

    def _write(self, relpath: str, data: bytes) -> None:
        if self._zip is not None:
            info = zipfile.ZipInfo(relpath, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            self._zip.writestr(info, data)
        else:
            path = os.path.join(self._tmp, relpath)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)

    def add_image(self, png: bytes, label=None, factors=None) -> str:
        """Append one PNG-encoded image; returns its relative path inside the data set."""
        idx = f'{self.num_images:08d}'
        relpath = f'{idx[:5]}/img{idx}.png'
        self._write(relpath, png)
        self.labels.append([relpath, label])
        if factors is not None:
            self.factor_values.append([relpath, [_json_number(v) for v in factors]])
        self.num_images += 1
        return relpath

    def commit(self, domains=None, factor_names=None, extra=None) -> None:
        """Write dataset.json and move the finished output into place."""
        meta = {'labels': self.labels if any(l is not None for _, l in self.labels) else None}
        if domains is not None:
            meta['domains'] = list(domains)
        if factor_names is not None:
            meta['factors'] = {'names': list(factor_names), 'values': self.factor_values}
        meta.update(extra or {})
        meta[MARKER] = 1
        self._write('dataset.json', json.dumps(meta).encode('utf-8'))
        check_dest(self.dest, self.overwrite)  # again: the destination may have changed while we worked
        if self._zip is not None:
            self._zip.close()
            self._zip = None
            os.chmod(self._tmp, 0o644)
            if os.path.isdir(self.dest): # an empty folder (check_dest refuses any other)
                os.rmdir(self.dest)
            os.replace(self._tmp, self.dest)
        else:
            old = None
            if os.path.isdir(self.dest) and os.listdir(self.dest):
                old = tempfile.mkdtemp(dir=os.path.dirname(self.dest), prefix=dnnlib.util.temp_prefix(self.dest), suffix='.tmp')
                os.rmdir(old)
                os.replace(self.dest, old)
            elif os.path.isdir(self.dest):
                os.rmdir(self.dest)
            elif os.path.exists(self.dest):
                os.remove(self.dest)
            os.chmod(self._tmp, 0o755)
            os.replace(self._tmp, self.dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        self._tmp = None

    def abort(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._tmp is not None:
            if os.path.isdir(self._tmp):
                shutil.rmtree(self._tmp, ignore_errors=True)
            elif os.path.exists(self._tmp):
                os.remove(self._tmp)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or self._tmp is not None:
            self.abort() # an exception, or commit() never called
        return False

#----------------------------------------------------------------------------

def _json_number(v):
    """Plain Python number for JSON; floats rounded to 6 significant digits to keep files small."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    return float(f'{float(v):.6g}')

#----------------------------------------------------------------------------
