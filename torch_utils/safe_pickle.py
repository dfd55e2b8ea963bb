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
"""
import collections
import io
import pickle

import numpy as np
import torch

#----------------------------------------------------------------------------

class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global that is not on the allow-list; nothing from it was run."""

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
        self.kind = kind

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

def _load_from_bytes(b):
    if not isinstance(b, (bytes, bytearray)):
        raise UnsafePickleError('torch.storage._load_from_bytes expects bytes')
    return torch.load(io.BytesIO(b), weights_only=True, map_location='cpu')


def _check_storage(storage):
    if not isinstance(storage, (torch.UntypedStorage, torch.storage.TypedStorage)):
        raise UnsafePickleError(f'tensor rebuild got {type(storage).__name__} instead of a storage')


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    _check_storage(storage)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), bool(requires_grad), collections.OrderedDict())


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    _check_storage(storage)
    if not isinstance(dtype, torch.dtype):
        raise UnsafePickleError('tensor rebuild got a bad dtype')
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, tuple(size), tuple(stride), bool(requires_grad), collections.OrderedDict(), dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError('parameter rebuild got a non-tensor')
    return torch.nn.Parameter(data, bool(requires_grad))


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter) or new_type not in (torch.Tensor, torch.nn.Parameter):
        raise UnsafePickleError('torch._tensor._rebuild_from_type_v2 with a non-tensor type')
    return func(*args)


def _np_reconstruct(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError('numpy reconstruction of a non-ndarray type')
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError('numpy scalar with an object dtype')
    return np.frombuffer(data, dtype=dtype, count=1)[0] if data is not None else dtype.type()


def _np_frombuffer(buf, dtype, shape, order='C'):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError('numpy _frombuffer with an object dtype')
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order=order).copy()


def _np_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise UnsafePickleError('numpy dtype from a non-string spec')
    return np.dtype(spec, align, copy)


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
    'set': set, 'frozenset': frozenset, 'slice': slice, 'complex': complex, 'bytearray': bytearray,
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
    ('torch', 'Tensor'): torch.Tensor,
    ('torch.nn.parameter', 'Parameter'): torch.nn.Parameter,
    ('numpy', 'ndarray'): np.ndarray,
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

class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose globals come only from the allow-list above."""

    def __init__(self, file, source: str = None):
        super().__init__(file)
        self.source = source or getattr(file, 'name', None) or '<stream>'

    def find_class(self, module: str, name: str):
        module = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}.get(module, module)
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

#----------------------------------------------------------------------------

def safe_load(f, source: str = None):
    """Unpickle a file object with RestrictedUnpickler."""
    return RestrictedUnpickler(f, source=source).load()

#----------------------------------------------------------------------------
