"""What the restricted unpickler (torch_utils/safe_pickle.py) may build from a network pickle: the policy half.

`resolve_global(module, name)` is the allow-list: the one place that says what a GLOBAL of a pickle may
become. It returns only
  - data constructors (tensors, storages, OrderedDict, numpy arrays, EasyDict, ...), each a checked
    version that validates its arguments and bounds every size before it allocates;
  - plain-data records in place of persistent objects (`PersistentRecord`: class name + state; the
    embedded module source is dropped, never executed) and in place of by-reference module classes
    (`ModuleRecord`: torch.nn.* and i-StyleGAN's training.flow.DDSF / DenseSigmoidFlow);
  - inert placeholders for dill's code-carrying constructs (functions, code objects, cells, modules);
  - NESTED_STORAGE for a storage pickled inside the pickle, which the unpickler reads with its own rules.
Anything else raises `UnsafePickleError` naming the global, before it is imported or called. No class
from the file is ever handed out callable: torch.Tensor, Parameter and numpy.ndarray become markers that
only the checked rebuild functions accept.
"""
import collections
import pickle

import numpy as np
import torch

#----------------------------------------------------------------------------

class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global that is not on the allow-list; nothing from it was run."""

MAX_TENSOR_NUMEL = 1 << 28   # same limit as torch_utils/allowlist.py
MAX_KIND = 200               # characters kept of an inert placeholder's description

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

class _NestedStorage:
    """Stands for torch.storage._load_from_bytes: a storage pickled inside the pickle (what torch's
    Storage.__reduce__ writes). The unpickler reads it with its own opcode rules (safe_pickle.load_storage_bytes)."""

    def __repr__(self):
        return '<nested storage>'

NESTED_STORAGE = _NestedStorage()

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
    ('torch.storage', '_load_from_bytes'): NESTED_STORAGE,
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

_KEY_TYPES = (str, bytes, int, float, bool, type(None), torch.dtype)


def _check_key(key):
    """Dict keys and set items must hash in constant time: plain values, or flat tuples of them."""
    if isinstance(key, _KEY_TYPES) or (type(key) is tuple and len(key) <= 16 and all(isinstance(k, _KEY_TYPES) for k in key)):
        return
    raise UnsafePickleError(f'a dict key or set item is a {type(key).__name__}, which network pickles never use')


def resolve_global(module: str, name: str, source: str):
    """What GLOBAL module.name of the pickle `source` becomes (module docstring); UnsafePickleError otherwise."""
    module = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}.get(module, module)
    if len(module) + len(name) > 200:
        raise UnsafePickleError(f'refusing to load {source}: it names a global of {len(module) + len(name)} characters.')
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
        raise UnsafePickleError(f'refusing to load {module}.{name} from {source}: it is a TensorFlow StyleGAN '
                                f'pickle; convert it to PyTorch with NVIDIA\'s stylegan2-ada-pytorch legacy.py first.')
    raise UnsafePickleError(f'refusing to load {module}.{name} from {source}: it is not on the allow-list '
                            f'of data types, and loading it could run code. If you trust this file, convert it '
                            f'with the code that wrote it (e.g. re-save the networks with our snapshot format).')

#----------------------------------------------------------------------------
