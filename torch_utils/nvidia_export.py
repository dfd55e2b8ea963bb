"""Write our networks as an NVIDIA-format pickle (`network-snapshot-*.pkl`) that NVIDIA's own code loads.

NVIDIA's `legacy.load_network_pkl` unpickles a dict {G, D, G_ema, augment_pipe, training_set_kwargs}; each
network is `torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = dict(type='class',
version=6, module_src, class_name, state): their loader executes `module_src` as a fresh module, takes the
class `class_name` from it, creates an instance without calling `__init__` and hands `state` to its
`__setstate__`. Our `module_src` is EXPORT_SOURCE below (written here, about twenty lines): classes that
subclass the loading code base's own `Generator` / `Discriminator` and rebuild themselves from the
constructor kwargs and tensors in `state`. So NVIDIA's networks render our weights, which match theirs
parameter for parameter (training/networks.py). Re-pickled by NVIDIA's code (its snapshots, its
projector), they keep EXPORT_SOURCE and a plain module `__dict__` as state, which `__setstate__` restores.
Our own reader (legacy.py, torch_utils/safe_pickle.py) reads the same records without executing anything:
`state` has `_init_kwargs` and the flat state dict under `_parameters`, where it looks for tensors.
"""
import io
import pickle

import torch

#----------------------------------------------------------------------------

EXPORT_SOURCE = '''\
"""Written by the CG-GAN exporter (legacy.py --dest=*.pkl): each network is rebuilt by the networks
module of the code base that opens this pickle, from its constructor arguments, then given its tensors."""
import importlib.util
_FLAT_SYNTHESIS_KWARGS = importlib.util.find_spec('training.networks_stylegan2') is not None
if _FLAT_SYNTHESIS_KWARGS:
    from training import networks_stylegan2 as _networks   # NVIDIA's stylegan3 repository
else:
    from training import networks as _networks             # stylegan2-ada-pytorch, i-StyleGAN

def _rebuild(self, state):
    if '_exported_by' not in state:     # re-pickled by the loading code base: a plain module __dict__
        return self.__dict__.update(state)
    kwargs = dict(state['_init_kwargs'])
    if _FLAT_SYNTHESIS_KWARGS and 'synthesis_kwargs' in kwargs:
        kwargs.update(kwargs.pop('synthesis_kwargs'))
    try:
        self.__init__(**kwargs)
    except TypeError as e:              # e.g. NVIDIA's MappingNetwork has no cond_mode
        raise TypeError(f'{e}: this {type(self).__name__} needs {state["_needs"]}') from None
    self.load_state_dict(state['_parameters'])
    self.train(state['training']).requires_grad_(False)

class Generator(_networks.Generator):
    __setstate__ = _rebuild

class Discriminator(_networks.Discriminator):
    __setstate__ = _rebuild
'''

NVIDIA_KWARGS = {  # constructor arguments of NVIDIA's classes (stylegan2-ada-pytorch training/networks.py)
    'Generator':     ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'mapping_kwargs', 'synthesis_kwargs'),
    'Discriminator': ('c_dim', 'img_resolution', 'img_channels', 'architecture', 'channel_base', 'channel_max', 'num_fp16_res',
                      'conv_clamp', 'cmap_dim', 'block_kwargs', 'mapping_kwargs', 'epilogue_kwargs'),
}

class ExportError(ValueError):
    """A network cannot be written in NVIDIA's format; the message says why in one sentence."""

#----------------------------------------------------------------------------

def _plain(obj):
    """Constructor kwargs as builtin containers (EasyDict -> dict), so the pickle names no class of ours."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def nvidia_kwargs(module: torch.nn.Module, what: str) -> dict:
    """The constructor kwargs NVIDIA's class needs to rebuild `module` (a G or D of training/networks.py)."""
    kind = type(module).__name__
    if kind not in NVIDIA_KWARGS or not hasattr(module, 'init_kwargs'):
        raise ExportError(f'{what} is a {kind}; only StyleGAN2 Generator and Discriminator networks can be exported.')
    kwargs = _plain(module.init_kwargs)
    if kind == 'Generator':
        mapping = dict(kwargs.get('mapping_kwargs') or {})
        if mapping.pop('class_name', None) is not None:
            mapping = istylegan_mapping_kwargs(module.mapping, what)
        synthesis = dict(kwargs.get('synthesis_kwargs') or {})
        synthesis.update({k: kwargs.pop(k) for k in list(kwargs) if k not in NVIDIA_KWARGS[kind]})  # flat synthesis kwargs
        synthesis.setdefault('num_fp16_res', module.synthesis.init_kwargs.get('num_fp16_res', 0))   # explicit: other repos differ
        synthesis.setdefault('conv_clamp', module.synthesis.init_kwargs.get('conv_clamp', None))
        mapping.setdefault('w_avg_beta', module.mapping.w_avg_beta)
        kwargs.update(mapping_kwargs=mapping, synthesis_kwargs=synthesis)
    extra = [k for k in kwargs if k not in NVIDIA_KWARGS[kind]]
    if extra:
        raise ExportError(f'{what} has constructor arguments NVIDIA\'s {kind} does not take ({", ".join(extra)}).')
    return kwargs


def istylegan_mapping_kwargs(mapping: torch.nn.Module, what: str) -> dict:
    """i-StyleGAN's MappingNetwork kwargs for our DomainFlowMapping (same parameter names and numerics)."""
    if type(mapping).__name__ != 'DomainFlowMapping' or mapping.mask_threshold != 0.1:
        raise ExportError(f'{what}: its mapping ({type(mapping).__name__}, mask threshold {getattr(mapping, "mask_threshold", "?")}) '
                          f'has no counterpart in i-StyleGAN\'s code, which hard-codes the threshold 0.1.')
    kwargs = {k: v for k, v in _plain(mapping.init_kwargs).items() if k not in ('z_dim', 'c_dim', 'w_dim', 'num_ws', 'mask_threshold')}
    kwargs.update(flow_norm=int(bool(kwargs.get('flow_norm', True))), use_label=0)
    return kwargs


def _needs(module: torch.nn.Module) -> str:
    flow = 'cond_mode' in (module.init_kwargs.get('mapping_kwargs') or {}) or type(getattr(module, 'mapping', None)).__name__ == 'DomainFlowMapping'
    return "i-StyleGAN's code (its flow mapping)" if flow else "a StyleGAN2 code base (stylegan2-ada-pytorch, stylegan3, i-StyleGAN)"


class _Record:
    """Stands for one network in the pickle: reduced to _reconstruct_persistent_obj(meta)."""

    def __init__(self, module: torch.nn.Module, what: str):
        state = dict(_exported_by='cggan', _needs=_needs(module), _init_args=(), _init_kwargs=nvidia_kwargs(module, what), training=bool(module.training),
                     _parameters={k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, _buffers={}, _modules={})
        self.meta = dict(type='class', version=6, module_src=EXPORT_SOURCE, class_name=type(module).__name__, state=state)


def _reconstruct_persistent_obj(meta):  # only its name is written: NVIDIA's torch_utils.persistence provides it on load
    raise RuntimeError('placeholder for NVIDIA\'s torch_utils.persistence._reconstruct_persistent_obj')


class _NvidiaPickler(pickle._Pickler):  # the pure-Python pickler lets us write a global we do not import
    def reducer_override(self, obj):
        if isinstance(obj, _Record):
            return (_reconstruct_persistent_obj, (obj.meta,))
        return NotImplemented

    def save(self, obj, save_persistent_id=True):
        if obj is not _reconstruct_persistent_obj:
            return super().save(obj, save_persistent_id)
        if id(obj) in self.memo:
            self.write(self.get(self.memo[id(obj)][0]))
            return
        self.save('torch_utils.persistence')
        self.save('_reconstruct_persistent_obj')
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

#----------------------------------------------------------------------------

def export_bytes(data: dict) -> bytes:
    """Pickle bytes of {G, D, G_ema, training_set_kwargs} (our modules) in NVIDIA's snapshot format."""
    missing = [k for k in ('G', 'D', 'G_ema') if not isinstance(data.get(k), torch.nn.Module)]
    if missing:
        raise ExportError(f'NVIDIA\'s loader needs G, D and G_ema, and the snapshot has no {", ".join(missing)}; export a training snapshot.')
    out = {k: _Record(data[k], k) for k in ('G', 'D', 'G_ema')}
    out['augment_pipe'] = None  # NVIDIA's tools never use it; its pipeline would need their augment.py
    kwargs = data.get('training_set_kwargs')
    out['training_set_kwargs'] = _plain(dict(kwargs)) if kwargs is not None else None
    f = io.BytesIO()
    _NvidiaPickler(f, protocol=4).dump(out)
    return f.getvalue()

#----------------------------------------------------------------------------
