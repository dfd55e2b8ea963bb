"""A restricted unpickler for NVIDIA / i-StyleGAN network pickles that never runs code from the file: the opcode half.

Every GLOBAL goes through torch_utils/pickle_policy.py (the allow-list: what a pickle may build). This module
is the machine that runs the opcodes: pure-Python `pickle._Unpickler` with the opcodes that touch objects
restricted. BUILD sets state only on our records, ndarrays and dtypes (never slot state, never on a class
or function, never a name the class defines); dict keys and set items must be plain values; reads are
clamped to the file, no opcode allocates a length the file cannot hold, and a pickle runs at most MAX_OPS
opcodes. The same rules parse the data.pkl of a torch.save zip before torch.load sees it (prescan_torch_zip)
and the storages pickled inside a pickle (load_storage_bytes).
"""
import collections
import io
import pickle
import struct

import numpy as np
import torch

from torch_utils.pickle_policy import (_LEGACY_STORAGE_DTYPES, _TORCH_DTYPES, NESTED_STORAGE, Inert,
                                       UnsafePickleError, _check_key, _check_view, _easydict,
                                       _np_setstate, _StateRecord, _torch_device, _torch_size, _TypeMarker, resolve_global)

MAX_OPS = 5_000_000          # opcodes of one pickle (a 1024^2 NVIDIA snapshot has well under 10^5)

#----------------------------------------------------------------------------
# Storages pickled inside a pickle.

def _load_legacy_storage(f, size):
    """One storage in torch's legacy format (what Storage.__reduce__ writes): three header pickles, the
    storage's persistent id, the key list, then per key an int64 element count and the raw bytes. Every
    count is checked against the bytes present before anything is allocated."""
    for _ in range(3):  # magic number, protocol version, system info
        _StorageHeader(f, 'a pickled storage').load()
    main = _StorageHeader(f, 'a pickled storage').load()
    keys = _StorageHeader(f, 'a pickled storage').load()
    if not (isinstance(main, tuple) and len(main) == 2 and main[0] == 'persistent'):
        raise UnsafePickleError('a pickled storage is not a single storage')
    pid = main[1]
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == 'storage' and pid[1] in _LEGACY_STORAGE_DTYPES):
        raise UnsafePickleError('a pickled storage has a malformed storage record')
    type_name, key, numel = pid[1], pid[2], pid[4]
    dtype = _LEGACY_STORAGE_DTYPES[type_name]
    element = torch.empty([], dtype=dtype).element_size()
    if keys != [key] or not isinstance(numel, int) or numel < 0 or numel * element > size:
        raise UnsafePickleError(f'a pickled storage declares {numel} elements, more than its {size} bytes hold')
    stored = f.read(8)
    if len(stored) != 8 or struct.unpack('<q', stored)[0] != numel:
        raise UnsafePickleError('a pickled storage has a size field that does not match its record')
    data = f.read(numel * element)
    if len(data) != numel * element:
        raise UnsafePickleError('a pickled storage is truncated')
    untyped = torch.frombuffer(bytearray(data), dtype=torch.uint8).untyped_storage() if data else torch.UntypedStorage(0)
    if type_name == 'UntypedStorage':
        return untyped
    return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def load_storage_bytes(b):
    """What torch.storage._load_from_bytes of the pickle stands for: a zip (torch.save) or legacy storage, read with
    the same rules."""
    if not isinstance(b, (bytes, bytearray)):
        raise UnsafePickleError('torch.storage._load_from_bytes expects bytes')
    f = io.BytesIO(b)
    if bytes(b[:4]) == b'PK\x03\x04':
        from torch_utils import allowlist
        try:
            allowlist.check_zip(f, 'a pickled storage')
        except allowlist.RefusedError as e:
            raise UnsafePickleError(str(e)) from None
        prescan_torch_zip(f, 'a pickled storage')
        return torch.load(f, weights_only=True, map_location='cpu')
    return _load_legacy_storage(f, len(b))

#----------------------------------------------------------------------------

class _ClampedReader:
    """A binary file whose reads never ask for more than the file still holds (no huge buffers from a
    length field in the file)."""

    def __init__(self, f):
        self.f = f
        pos = f.tell()
        f.seek(0, 2)
        self.end = f.tell()
        f.seek(pos)

    def read(self, n=-1):
        left = max(self.end - self.f.tell(), 0)
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self):
        return self.f.readline(1 << 16)

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _counted(op):
    """An opcode handler that first counts itself against MAX_OPS."""
    def run(self):
        self.ops += 1
        if self.ops > MAX_OPS:
            self._refuse(f'it has more than {MAX_OPS} opcodes')
        op(self)
    return run


class RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler whose globals come only from the allow-list (pickle_policy.resolve_global) and whose BUILD, dict and
    set opcodes accept only what network pickles hold."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, source: str = None, encoding: str = 'ASCII'):
        reader = _ClampedReader(file) if file.seekable() else file
        super().__init__(reader, encoding=encoding)     # encoding: how Python 2 str data decodes ('latin1' for numpy's)
        self.source = source or getattr(file, 'name', None) or '<stream>'
        self.size = reader.end if isinstance(reader, _ClampedReader) else 0
        self.ops = 0

    def load_bytearray8(self):  # the one opcode that allocates its length before reading
        (length,) = struct.unpack('<Q', self.read(8))
        if length > self.size:
            self._refuse(f'it declares a bytearray of {length} bytes in a file of {self.size}')
        b = bytearray(length)
        self.readinto(b)
        self.append(b)
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def _refuse(self, what):
        raise UnsafePickleError(f'refusing to load {self.source}: {what}, which network pickles never do.')

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, (_StateRecord, Inert)):  # records keep the state as data, never as attributes
            inst.__setstate__(state)
        elif type(inst) is np.ndarray:
            _np_setstate(inst, state)
        elif isinstance(inst, np.dtype):
            if not (isinstance(state, tuple) and len(state) == 8 and state[2:5] == (None, None, None) and state[5:7] == (-1, -1)):
                self._refuse('it sets a structured or sub-array dtype state')
            inst.__setstate__(state)
        elif type(inst) in (dict, collections.OrderedDict, _easydict()):
            if state is not None and not (isinstance(state, dict) and all(  # e.g. a state dict's _metadata
                    isinstance(k, str) and not k.startswith('__') and not hasattr(type(inst), k) for k in state)):
                self._refuse(f'it sets attributes on a {type(inst).__name__} that could replace its methods')
            if state and type(inst) is not dict:
                inst.__dict__.update(state)
        else:
            self._refuse(f'it sets the state of {"the class " if isinstance(inst, type) else "a "}'
                         f'{getattr(inst, "__name__", None) if isinstance(inst, type) else type(inst).__name__}')
    dispatch[pickle.BUILD[0]] = load_build

    def load_setitem(self):
        _check_key(self.stack[-2])
        super().load_setitem()
    dispatch[pickle.SETITEM[0]] = load_setitem

    # Constructors that hash what they are given: the keys / items must be plain first.
    def _check_call(self, func, args):
        if func in (set, frozenset, collections.OrderedDict, _easydict()) and args:
            if not isinstance(args, tuple) or not isinstance(args[0], (list, tuple, dict, set, frozenset)):
                self._refuse(f'it builds a {getattr(func, "__name__", func)} from a {type(args[0] if isinstance(args, tuple) else args).__name__}')
            if isinstance(args[0], (list, tuple)):
                pairs = func not in (set, frozenset)
                for item in args[0]:
                    if pairs and not (isinstance(item, (tuple, list)) and len(item) == 2):
                        self._refuse(f'it builds a {func.__name__} from items that are not pairs')
                    _check_key(item[0] if pairs else item)

    def load_reduce(self):
        self._check_call(self.stack[-2], self.stack[-1])
        super().load_reduce()
    dispatch[pickle.REDUCE[0]] = load_reduce

    def _instantiate(self, klass, args):
        self._check_call(klass, tuple(args))
        super()._instantiate(klass, args)

    # SETITEMS, DICT, ADDITEMS and FROZENSET take the items pushed since the last MARK, which the
    # pure-Python unpickler holds as self.stack until it pops the mark.
    def load_setitems(self):
        for key in self.stack[::2]:
            _check_key(key)
        super().load_setitems()
    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_dict(self):
        for key in self.stack[::2]:
            _check_key(key)
        super().load_dict()
    dispatch[pickle.DICT[0]] = load_dict

    def load_additems(self):
        for item in self.stack:
            _check_key(item)
        super().load_additems()
    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_frozenset(self):
        for item in self.stack:
            _check_key(item)
        super().load_frozenset()
    dispatch[pickle.FROZENSET[0]] = load_frozenset

    def find_class(self, module: str, name: str):
        found = resolve_global(module, name, self.source)
        return load_storage_bytes if found is NESTED_STORAGE else found

    def persistent_load(self, pid):
        raise UnsafePickleError(f'refusing to load {self.source}: it uses persistent ids ({type(pid).__name__}), which network pickles never do.')

    dispatch = {code: _counted(op) for code, op in dispatch.items()}  # a bound on time, whatever the opcodes

#----------------------------------------------------------------------------

class _StorageHeader(RestrictedUnpickler):
    """Reads the small pickles of torch's legacy (non-zip) storage format: plain data, storage type names."""

    def find_class(self, module, name):
        if module in ('torch', 'torch.storage') and name in _LEGACY_STORAGE_DTYPES:
            return name
        raise UnsafePickleError(f'a pickled storage names {module[:60]}.{name[:60]}, which is not a storage type')

    def persistent_load(self, pid):
        return ('persistent', pid)


class _StoragePlaceholder:
    __slots__ = ('nbytes', 'element')

    def __init__(self, nbytes, element):
        self.nbytes, self.element = nbytes, element


class TorchPicklePrescan(RestrictedUnpickler):
    """Parses the data.pkl of a torch.save zip before torch.load sees it, allocating nothing: the same
    opcode rules as above, only the globals our snapshots hold, every storage's declared size equal to
    its zip entry, every tensor view inside its storage."""

    def __init__(self, file, source: str, record_sizes: dict):
        super().__init__(file, source=source)
        self.record_sizes = record_sizes

    def find_class(self, module: str, name: str):
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return self._rebuild_tensor
        if module == 'torch' and name in ('Size', 'device'):
            return _torch_size if name == 'Size' else _torch_device
        if module == 'torch' and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if module in ('torch', 'torch.storage') and name in _LEGACY_STORAGE_DTYPES:
            return _TypeMarker(name)
        raise UnsafePickleError(f'refusing to load {self.source}: it names {module[:60]}.{name[:60]}, which snapshots of this code never hold.')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage' and isinstance(pid[1], _TypeMarker)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise UnsafePickleError(f'refusing to load {self.source}: it has a malformed storage record.')
        element = torch.empty([], dtype=_LEGACY_STORAGE_DTYPES[pid[1].name]).element_size()
        size = self.record_sizes.get(pid[2])
        if size is None or pid[4] < 0 or pid[4] * element != size:
            raise UnsafePickleError(f'refusing to load {self.source}: a storage declares {pid[4]} elements but its record '
                                    f'holds {size} bytes.')
        return _StoragePlaceholder(size, element)

    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        if not isinstance(storage, _StoragePlaceholder):
            raise UnsafePickleError(f'refusing to load {self.source}: a tensor is not built on a storage.')
        _check_view(torch.UntypedStorage(0), offset, size, stride, storage.element, available=storage.nbytes // storage.element)
        return None


def prescan_torch_zip(f, source: str):
    """Check the data.pkl of an open torch.save zip (entries already checked by allowlist.check_zip)."""
    import zipfile
    pos = f.tell()
    try:
        with zipfile.ZipFile(f) as z:
            names = [n for n in z.namelist() if n.endswith('/data.pkl') and n.count('/') == 1]
            if len(names) != 1:
                raise UnsafePickleError(f'refusing to load {source}: it is a zip without exactly one data.pkl.')
            prefix = names[0][:-len('data.pkl')]
            sizes = {i.filename[len(prefix) + 5:]: i.file_size for i in z.infolist() if i.filename.startswith(prefix + 'data/')}
            TorchPicklePrescan(io.BytesIO(z.read(names[0])), source, sizes).load()
    finally:
        f.seek(pos)

#----------------------------------------------------------------------------

def safe_load(f, source: str = None):
    """Unpickle a file object with RestrictedUnpickler."""
    return RestrictedUnpickler(f, source=source).load()

#----------------------------------------------------------------------------