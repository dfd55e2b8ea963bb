"""Write pickles in the *formats* of NVIDIA's and i-StyleGAN's snapshots, at test time.

Nothing here comes from those code bases: `FakePickler` (built on the pure-Python pickle.Pickler)
can emit any global name, so we write the same opcode structure their files have:
  - NVIDIA persistence: every network module reduces to
    torch_utils.persistence._reconstruct_persistent_obj(meta), meta = dict(type='class', version=6,
    module_src=<source text>, class_name=<unqualified name>, state=<module __dict__ + _init_args/_init_kwargs>);
  - i-StyleGAN (dill): the mapping's `flow` is training.flow.DDSF pickled by reference (NEWOBJ + BUILD),
    holding a torch.nn.Sequential of training.flow.DenseSigmoidFlow whose lambdas dill writes as
    dill._dill._create_function(dill._dill._create_code(...), <training.flow __dict__>, ...).
The embedded source below is never executed by our loader; if it were, it would raise.
"""
import copy
import copyreg
import io
import pickle

import torch

import dnnlib

FIXTURE_MODULE_SRC = "raise RuntimeError('fixture module_src was executed; the loader must never run pickled source')\n"

#----------------------------------------------------------------------------

class FakeGlobal:
    """Pickled as the global `module.name` (without importing it)."""
    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args, **kwargs):  # pickle requires reduce callables to be callable
        raise RuntimeError('FakeGlobal is only for writing pickles')


class FakeObject:
    """Pickled as `func(*args)` followed by BUILD(state); with func=copyreg.__newobj__ as NEWOBJ."""
    def __init__(self, func, args=(), state=None):
        self._func, self._args, self._state = func, tuple(args), state

    @property
    def __class__(self):  # pickle's NEWOBJ path checks obj.__class__ is args[0]
        if self._func is copyreg.__newobj__:
            return self._args[0]
        return FakeObject


class FakePickler(pickle._Pickler):
    def save(self, obj, save_persistent_id=True):
        if type(obj) is FakeGlobal:
            if id(obj) in self.memo:
                self.write(self.get(self.memo[id(obj)][0]))
                return
            if self.proto >= 4:
                self.save(obj.module)
                self.save(obj.name)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode('utf-8'))
            self.memoize(obj)
            return
        super().save(obj, save_persistent_id)

    def reducer_override(self, obj):
        if type(obj) is FakeObject:
            return (obj._func, obj._args, obj._state)
        return NotImplemented


def fake_dumps(obj, protocol=4) -> bytes:
    f = io.BytesIO()
    FakePickler(f, protocol=protocol).dump(obj)
    return f.getvalue()

#----------------------------------------------------------------------------
# NVIDIA persistence format.

RECONSTRUCT = FakeGlobal('torch_utils.persistence', '_reconstruct_persistent_obj')


def nvidia_record(module: torch.nn.Module, passed_kwargs: dict = None, module_src: str = FIXTURE_MODULE_SRC):
    """The persistent-object reduction NVIDIA's pickles hold for `module` (children recursively)."""
    state = {k: v for k, v in module.__dict__.items() if k != 'init_kwargs'}
    state['_modules'] = {name: nvidia_record(child, module_src=module_src) if child is not None else None
                         for name, child in module._modules.items()}
    state['_init_args'] = ()
    kwargs = passed_kwargs if passed_kwargs is not None else getattr(module, 'init_kwargs', {})
    state['_init_kwargs'] = dnnlib.EasyDict(copy.deepcopy(kwargs))
    meta = dict(type='class', version=6, module_src=module_src, class_name=type(module).__name__, state=state)
    return FakeObject(RECONSTRUCT, (meta,))


def nvidia_pickle_bytes(networks: dict, passed_kwargs: dict = None, extra: dict = None, protocol=4) -> bytes:
    """{G, D, G_ema, ...} of our modules -> bytes of an NVIDIA-style snapshot pickle."""
    data = {}
    for key, module in networks.items():
        data[key] = nvidia_record(module, (passed_kwargs or {}).get(key)) if isinstance(module, torch.nn.Module) else module
    data.update(extra or {})
    return fake_dumps(data, protocol=protocol)

#----------------------------------------------------------------------------
# i-StyleGAN (dill) format for the flow mapping.

def _dill_lambda(name):
    code = FakeObject(FakeGlobal('dill._dill', '_create_code'), (1, 0, 0, 1, 3, 19, b't\x00|\x00\x83\x01S\x00', (None,), ('F',), ('x',), 'flow.py', '<lambda>', 75, b'', (), ()))
    globs = FakeGlobal('training.flow', '__dict__')
    return FakeObject(FakeGlobal('dill._dill', '_create_function'), (code, globs, name, None, None))


def _by_reference(module, name, state):
    return FakeObject(copyreg.__newobj__, (FakeGlobal(module, name),), state)


def _plain_module_state(params: dict, modules: dict = None, extra: dict = None):
    state = dict(training=False, _parameters=dict(params), _buffers={}, _non_persistent_buffers_set=set(),
                 _backward_hooks={}, _forward_hooks={}, _forward_pre_hooks={}, _state_dict_hooks={},
                 _load_state_dict_pre_hooks={}, _modules=dict(modules or {}))
    state.update(extra or {})
    return state


def istylegan_flow_object(state_dict: dict, prefix: str = 'flow.'):
    """training.flow.DDSF (by reference) rebuilt from flat `flow.model.{i}.u_/w_` tensors."""
    blocks = sorted({int(k[len(prefix + 'model.'):].split('.')[0]) for k in state_dict if k.startswith(prefix + 'model.')})
    children = {}
    for i in blocks:
        u = torch.nn.Parameter(state_dict[f'{prefix}model.{i}.u_'].clone())
        w = torch.nn.Parameter(state_dict[f'{prefix}model.{i}.w_'].clone())
        extra = dict(in_dim=u.shape[1], hidden_dim=u.shape[0], out_dim=w.shape[0], num_params=3 * u.shape[0] + u.shape[1],
                     act_a=_dill_lambda('<lambda>'), act_b=_dill_lambda('<lambda>'), act_w=_dill_lambda('<lambda>'), act_u=_dill_lambda('<lambda>'))
        children[str(i)] = _by_reference('training.flow', 'DenseSigmoidFlow', _plain_module_state(dict(u_=u, w_=w), extra=extra))
    seq = _by_reference('torch.nn.modules.container', 'Sequential', _plain_module_state({}, children))
    return _by_reference('training.flow', 'DDSF', _plain_module_state({}, dict(model=seq), extra=dict(num_params=0)))

#----------------------------------------------------------------------------
