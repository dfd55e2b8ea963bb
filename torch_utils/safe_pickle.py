"""A restricted unpickler for NVIDIA / i-StyleGAN network pickles that never runs code from the file.

A pickle can name any importable callable and ask the loader to call it (GLOBAL + REDUCE). Here every
global goes through `find_class`, which returns only:
  - data constructors from an allow-list (tensors, storages, OrderedDict, numpy arrays, EasyDict, ...),
    each wrapped so that it checks its arguments;
  - plain-data records in place of persistent objects (`PersistentRecord`: class name + state; the
    embedded module source is dropped, never executed) and in place of by-reference module classes
    (`ModuleRecord`: torch.nn.* and i-StyleGAN's training.flow.DDSF / DenseSigmoidFlow);
  - inert placeholders for dill's code-carrying constructs (functions, code objects, cells, modules).
Anything else raises `UnsafePickleError` naming the global, before it is imported or called.

No class from the file is ever handed out callable: torch.Tensor, Parameter and numpy.ndarray become
markers that only the checked rebuild functions accept. The unpickler (pure-Python `pickle._Unpickler`)
also restricts the opcodes that touch objects: BUILD sets state only on our records, ndarrays and
dtypes (never slot state, never on a class or function, never a name the class defines), and dict keys
and set items must be plain values. Sizes are checked before anything is allocated (reads clamped to
the file, tensor views within their storage, storages within the bytes that hold them).
"""
import collections
import io
import pickle
import struct

import numpy as np
import torch

#----------------------------------------------------------------------------

class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global that is not on the allow-list; nothing from it was run."""

MAX_TENSOR_NUMEL = 1 << 28   # same limit as torch_utils/allowlist.py
MAX_KIND = 200               # characters kept of an inert placeholder's description
MAX_OPS = 5_000_000          # opcodes of one pickle (a 1024^2 NVIDIA snapshot has well under 10^5)

#----------------------------------------------------------------------------
# Records: what persistent objects and by-reference modules become.

class _StateRecord:
    """Common part: `class_name` and the pickled `__dict__` (`state`) of a module."""
    class_name = None

    def __setstate__(self, state):  # BUILD opcode
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state or {})

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get('_init_args', ()) or ())

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get('_init_kwargs', {}) or {})

    def children(self) -> dict:
        return dict(self.state.get('_modules', {}) or {})

    def named_tensors(self, prefix: str = '') -> dict:
        """Flat {name: tensor} keyed like nn.Module.state_dict() (non-persistent buffers left out)."""
        out = collections.OrderedDict()
        for name, value in (self.state.get('_parameters', {}) or {}).items():
            if value is not None:
                out[prefix + name] = value
        skip = set(self.state.get('_non_persistent_buffers_set', ()) or ())
        for name, value in (self.state.get('_buffers', {}) or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = value
        for name, child in self.children().items():
            if isinstance(child, _StateRecord):
                out.update(child.named_tensors(prefix + name + '.'))
        return out

    def __repr__(self):
        return f'<{type(self).__name__} {self.class_name}>'


class PersistentRecord(_StateRecord):
    """A `torch_utils.persistence` object as data: class name (unqualified), init args/kwargs, state."""

    def __init__(self, meta: dict):
        meta = dict(meta)
        self.class_name = str(meta.get('class_name'))
        self.version = meta.get('version')
        self.type = meta.get('type')
        src = meta.get('module_src') or ''
        # The source text is never executed; keep only a few facts that identify the code base.
        self.source_facts = dict(
            stylegan3='class SynthesisInput' in src,
            istylegan='DDSF' in src or 'importance' in src,
            stylegan3_repo='update_emas' in src and 'fused_modconv_default' in src,  # its networks_stylegan2.py
        )
        self.__setstate__(meta.get('state'))


class ModuleRecord(_StateRecord):
    """A module class pickled by reference (torch.nn.Sequential, training.flow.DDSF, ...) as data."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.state = {}

#----------------------------------------------------------------------------
# Inert placeholders for dill's code-carrying constructs.

class Inert:
    """Stands for a function, code object, cell, type or module from the file; does nothing."""

    def __init__(self, kind='object', *args, **kwargs):
        self.kind = str(kind)[:MAX_KIND]

    def __call__(self, *args, **kwargs):
        return Inert(f'{self.kind}()')

    def __setstate__(self, state):
        pass

    def __repr__(self):
        return f'<inert {self.kind}>'


def _inert_factory(name):
    def make(*args, **kwargs):
        return Inert(name)
    make.__name__ = f'inert_{name}'
    return make

#----------------------------------------------------------------------------
# Checked versions of the data constructors on the allow-list.

class _TypeMarker:
    """Stands for torch.Tensor / Parameter / numpy.ndarray as arguments; not callable, has no state."""
    __slots__ = ('name',)

    def __init__(self, name):
        self.name = name

_TENSOR, _PARAMETER, _NDARRAY = _TypeMarker('torch.Tensor'), _TypeMarker('torch.nn.Parameter'), _TypeMarker('numpy.ndarray')

_LEGACY_STORAGE_DTYPES = {
    'FloatStorage': torch.float32, 'DoubleStorage': torch.float64, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
    'UntypedStorage': torch.uint8,
}


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


def _load_from_bytes(b):
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


def _check_storage(storage):
    if not isinstance(storage, (torch.UntypedStorage, torch.storage.TypedStorage)):
        raise UnsafePickleError(f'tensor rebuild got {type(storage).__name__} instead of a storage')


def _check_view(storage, offset, size, stride, element_size, available=None):
    """The view (offset, size, stride) lies inside the storage (`available` elements) and is not too large."""
    size, stride = tuple(size), tuple(stride)
    if not (isinstance(offset, int) and offset >= 0 and len(size) == len(stride) <= 16 and
            all(isinstance(v, int) and v >= 0 for v in size + stride)):
        raise UnsafePickleError('tensor rebuild with a malformed size, stride or offset')
    numel = 1
    for n in size:
        numel *= n
    if numel > MAX_TENSOR_NUMEL:
        raise UnsafePickleError(f'a tensor of {numel} elements is over the limit of {MAX_TENSOR_NUMEL}')
    if available is None:
        untyped = storage._untyped_storage if isinstance(storage, torch.storage.TypedStorage) else storage
        available = untyped.nbytes() // element_size
    if numel and offset + sum((n - 1) * st for n, st in zip(size, stride)) >= available:
        raise UnsafePickleError('tensor rebuild with a view outside its storage')
    return size, stride


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    _check_storage(storage)
    element = torch._utils._element_size(storage.dtype) if isinstance(storage, torch.storage.TypedStorage) else 1
    size, stride = _check_view(storage, storage_offset, size, stride, element)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, bool(requires_grad), collections.OrderedDict())


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    _check_storage(storage)
    if not isinstance(dtype, torch.dtype):
        raise UnsafePickleError('tensor rebuild got a bad dtype')
    size, stride = _check_view(storage, storage_offset, size, stride, torch.empty([], dtype=dtype).element_size())
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, size, stride, bool(requires_grad), collections.OrderedDict(), dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError('parameter rebuild got a non-tensor')
    return torch.nn.Parameter(data, bool(requires_grad))


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter) or new_type not in (_TENSOR, _PARAMETER) or not isinstance(args, tuple):
        raise UnsafePickleError('torch._tensor._rebuild_from_type_v2 with a non-tensor type')
    return func(*args)


def _np_reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise UnsafePickleError('numpy reconstruction of a non-ndarray type')
    if not (isinstance(shape, tuple) and len(shape) <= 16 and all(isinstance(n, int) and 0 <= n <= 64 for n in shape)):
        raise UnsafePickleError('numpy reconstruction with a large or malformed placeholder shape')
    return np.ndarray.__new__(np.ndarray, shape, _np_dtype(dtype) if isinstance(dtype, (str, bytes)) else _checked_dtype(dtype))


def _checked_dtype(dtype):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.itemsize > 64 or dtype.subdtype is not None:
        raise UnsafePickleError('numpy data with an object, nested or oversized dtype')
    return dtype


def _np_setstate(array, state):
    """ndarray BUILD: (version, shape, dtype, is_fortran, raw bytes) whose bytes match the shape exactly."""
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise UnsafePickleError('numpy array state is malformed')
    shape, dtype, raw = state[-4], _checked_dtype(state[-3]), state[-1]
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)) or not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickleError('numpy array state is malformed')
    numel = 1
    for n in shape:
        numel *= n
    if numel * dtype.itemsize != len(raw):
        raise UnsafePickleError(f'numpy array state declares {numel} elements but holds {len(raw)} bytes')
    array.__setstate__(state)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError('numpy scalar with an object dtype')
    return np.frombuffer(data, dtype=dtype, count=1)[0] if data is not None else dtype.type()


def _np_frombuffer(buf, dtype, shape, order='C'):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError('numpy _frombuffer with an object dtype')
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order=order).copy()


def _np_dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):
        spec = spec.decode('latin1')
    if not isinstance(spec, str) or len(spec) > 8:
        raise UnsafePickleError('numpy dtype from a non-string or long spec')
    try:
        return _checked_dtype(np.dtype(spec, bool(align), bool(copy)))
    except TypeError:
        raise UnsafePickleError(f'numpy dtype from an unknown spec {spec!r}') from None


def _bytearray(data=b''):
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError('builtins.bytearray only allowed from bytes')
    return bytearray(data)


def _codecs_encode(text, encoding='utf-8'):
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafePickleError('_codecs.encode only allowed for latin1 text')
    return text.encode(encoding)


def _reconstructor(cls, base, state):
    # copyreg._reconstructor (protocol 0/1 objects): only for our record classes.
    if not (isinstance(cls, type) and issubclass(cls, (ModuleRecord, Inert))):
        raise UnsafePickleError(f'copyreg._reconstructor of {getattr(cls, "__name__", cls)}')
    return cls.__new__(cls)


def _torch_size(*args):
    return torch.Size(*args)


def _torch_device(*args):
    return torch.device(*[a for a in args if isinstance(a, (str, int))])


def _safe_getattr(obj, name, *default):
    if isinstance(obj, Inert):
        return Inert(f'{obj.kind}.{name}')
    raise UnsafePickleError(f'builtins.getattr on {type(obj).__name__}')


def _safe_setattr(obj, name, value):
    if isinstance(obj, (Inert, ModuleRecord, PersistentRecord)):
        return None
    raise UnsafePickleError(f'builtins.setattr on {type(obj).__name__}')


def _easydict():
    import dnnlib
    return dnnlib.EasyDict

#----------------------------------------------------------------------------
# The allow-list.

_BUILTINS = {
    'set': set, 'frozenset': frozenset, 'slice': slice, 'complex': complex, 'bytearray': _bytearray,
    'object': object, 'getattr': _safe_getattr, 'setattr': _safe_setattr,
}

_ALLOWED = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_tensor_v3'): _rebuild_tensor_v3,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    ('torch', 'Size'): _torch_size,
    ('torch', 'device'): _torch_device,
    ('torch', 'Tensor'): _TENSOR,
    ('torch.nn.parameter', 'Parameter'): _PARAMETER,
    ('numpy', 'ndarray'): _NDARRAY,
    ('numpy', 'dtype'): _np_dtype,
    ('numpy.core.multiarray', '_reconstruct'): _np_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _np_reconstruct,
    ('numpy.core.multiarray', 'scalar'): _np_scalar,
    ('numpy._core.multiarray', 'scalar'): _np_scalar,
    ('numpy.core.numeric', '_frombuffer'): _np_frombuffer,
    ('numpy._core.numeric', '_frombuffer'): _np_frombuffer,
    ('_codecs', 'encode'): _codecs_encode,
    ('copyreg', '_reconstructor'): _reconstructor,
}

_TORCH_DTYPES = {name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype)}

# Persistent objects of NVIDIA's torch_utils.persistence become PersistentRecords.
_PERSISTENCE_MODULES = ('torch_utils.persistence',)

# By-reference module classes kept as state-only records (the class itself is never imported).
_RECORD_CLASSES = {
    ('training.flow', 'DDSF'), ('training.flow', 'DenseSigmoidFlow'), ('training.flow', 'BaseFlow'),
}

_DILL_MODULES = ('dill._dill', 'dill._shims', 'dill.dill', 'dill')

_record_class_cache = {}

def _record_class(module: str, name: str) -> type:
    key = f'{module}.{name}'
    if key not in _record_class_cache:
        _record_class_cache[key] = type(name, (ModuleRecord,), dict(class_name=key))
    return _record_class_cache[key]

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


_KEY_TYPES = (str, bytes, int, float, bool, type(None), torch.dtype)


def _check_key(key):
    """Dict keys and set items must hash in constant time: plain values, or flat tuples of them."""
    if isinstance(key, _KEY_TYPES) or (type(key) is tuple and len(key) <= 16 and all(isinstance(k, _KEY_TYPES) for k in key)):
        return
    raise UnsafePickleError(f'a dict key or set item is a {type(key).__name__}, which network pickles never use')


def _counted(op):
    """An opcode handler that first counts itself against MAX_OPS."""
    def run(self):
        self.ops += 1
        if self.ops > MAX_OPS:
            self._refuse(f'it has more than {MAX_OPS} opcodes')
        op(self)
    return run


class RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler whose globals come only from the allow-list above and whose BUILD, dict and
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
        module = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}.get(module, module)
        if len(module) + len(name) > 200:
            raise UnsafePickleError(f'refusing to load {self.source}: it names a global of {len(module) + len(name)} characters.')
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == 'builtins' and name in _BUILTINS:
            return _BUILTINS[name]
        if module in ('dnnlib', 'dnnlib.util') and name == 'EasyDict':
            return _easydict()
        if module == 'torch' and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if module in _PERSISTENCE_MODULES and name == '_reconstruct_persistent_obj':
            return PersistentRecord
        if (module, name) in _RECORD_CLASSES or (module.startswith('torch.nn.modules.') and name[:1].isupper()):
            return _record_class(module, name)
        if module in _DILL_MODULES:
            return _inert_factory(f'dill.{name}')
        if name == '__dict__':  # dill writes a module's globals as GLOBAL <module> __dict__
            return Inert(f'{module}.__dict__')
        if module.startswith('dnnlib.tflib'):
            raise UnsafePickleError(f'refusing to load {module}.{name} from {self.source}: it is a TensorFlow StyleGAN '
                                    f'pickle; convert it to PyTorch with NVIDIA\'s stylegan2-ada-pytorch legacy.py first.')
        raise UnsafePickleError(f'refusing to load {module}.{name} from {self.source}: it is not on the allow-list '
                                f'of data types, and loading it could run code. If you trust this file, convert it '
                                f'with the code that wrote it (e.g. re-save the networks with our snapshot format).')

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
