"""What a file (snapshot, pickle, stored run options) may ask this code to build, and how big.

Every object built from a file goes through `construct(slot, spec, where)`: the class name must be one
of the exact names on the slot's list below (no prefixes, no imports of anything else), and its keyword
arguments must be plain data (None, bool, int, float, str, and lists, tuples, dicts of those), bounded
in depth and size, with the size-setting integers inside the limits below. `check_data` bounds a whole
file's contents the same way before anything else walks them: every visit counts (a shared reference
counts each time it is reached), and cycles are refused.

Limits (sensible for real StyleGAN2 files up to 1024x1024; see docs/security.md):
resolution 4..1024 (power of two), image channels 1..4, up to 1024 domains, widths (z, w, mapping
features, channel_max) up to 4096, channel_base up to 2**17, 64 layers or flow blocks, one tensor up to
2**28 elements, 8 GiB of tensor data per file; a network built from a file has at most 2**27 parameter
and buffer elements, counted on a construction with fake tensors (no memory) before the real one.
"""
import importlib
import math

import torch

from torch_utils.ops import bias_act

#----------------------------------------------------------------------------

class RefusedError(ValueError):
    """A file asks for something this code never builds from a file, or is too large; one sentence."""

#----------------------------------------------------------------------------

SLOTS = {
    'G':            ('training.networks.Generator',),
    'D':            ('training.networks.Discriminator',),
    'mapping':      ('training.networks.MappingNetwork', 'training.domain_flow.DomainFlowMapping'),
    'synthesis':    ('training.networks.SynthesisNetwork',),
    'augment_pipe': ('training.augment.AugmentPipe',),
    'loss':         ('training.loss.StyleGAN2Loss',),
    'optimizer':    ('torch.optim.Adam',),
    'dataset':      ('training.dataset.ImageFolderDataset',),
    'feature_extractor': ('metrics.features.RandomConvFeatureExtractor',),  # calc_metrics.py --features
}

# kwargs inside a class's kwargs that name a class of their own: {class: {key: slot}}.
NESTED = {'training.networks.Generator': {'mapping_kwargs': 'mapping'}}

MAX_RESOLUTION = 1024
MAX_TENSOR_NUMEL = 1 << 28
MAX_MODULE_NUMEL = 1 << 27  # parameters + buffers of one network built from a file (a 1024^2 CG-GAN G: 45M)
MAX_TENSOR_BYTES = 8 << 30
MAX_ITEMS = 200_000         # visits when checking a whole file's data (a 1024^2 CG-GAN snapshot: ~2k)
MAX_KWARGS_ITEMS = 10_000   # visits when checking one class's kwargs
MAX_DEPTH = 48
MAX_STR = 4096              # characters of one string in kwargs

_WIDTH = (0, 4096)
# Integers that set sizes, wherever they occur in kwargs: (lowest, highest); None is allowed too.
INT_LIMITS = {
    'img_resolution': (4, MAX_RESOLUTION), 'resolution': (1, MAX_RESOLUTION), 'img_channels': (1, 4),
    'c_dim': (0, 1024), 'z_dim': _WIDTH, 'w_dim': (1, 4096), 'i_dim': _WIDTH, 'num_ws': (0, 64),
    'layer_features': _WIDTH, 'embed_features': _WIDTH, 'cmap_dim': _WIDTH, 'channel_max': (1, 4096),
    'channel_base': (1, 1 << 17), 'num_layers': (0, 64), 'flow_blocks': (0, 64), 'flow_dim': (1, 4096),
    'num_fp16_res': (0, 16), 'mbstd_group_size': (0, 1024), 'mbstd_num_channels': (0, 64),
    'num_columns': (1, 4096), 'max_size': (0, 1 << 40), 'pl_batch_shrink': (1, 1024), 'sparse_interval': (1, 1 << 20),
}

# Strings that select behaviour, wherever they occur in kwargs: the values this code knows.
STR_CHOICES = {
    'architecture': ('orig', 'skip', 'resnet'), 'cond_mode': ('flow', 'mlp', 'concat'), 'estimator': ('fd', 'jvp'),
    'activation': tuple(sorted(bias_act.activation_funcs)),
}
MAX_LIST = 64  # items of one list in kwargs (filters, betas, bands: a handful)

_SCALARS = (type(None), bool, int, float, str)

#----------------------------------------------------------------------------

def brief(value, limit: int = 60) -> str:
    """A short description of a value from a file, for messages (never a full repr of big data)."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + '...')
    if isinstance(value, (type(None), bool, int, float)):
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + '...'
    return f'a {type(value).__name__}'


def _key_text(key) -> str:
    return f'[{brief(key, 40)}]'


def check_data(obj, where: str, leaves=(), expand=None, max_items: int = MAX_ITEMS, max_depth: int = MAX_DEPTH):
    """Visit `obj` once, bounded: raises RefusedError on a cycle, nesting deeper than max_depth, more than
    max_items visits, a type that is neither a container, a plain scalar nor one of `leaves`, or tensors
    over the size limits. `expand(x)` may return the children (a dict) of a non-container type, else None."""
    budget = [max_items, 0]  # visits left, tensor bytes seen
    on_path = set()
    path = []

    def fail(what):
        raise RefusedError(f'{where}{"".join(path)}: {what}; refusing to read it.')

    def visit(x, depth):
        budget[0] -= 1
        if budget[0] < 0:
            fail(f'holds more than {max_items} items (or shared references that multiply them)')
        if isinstance(x, _SCALARS + (bytes,)) or (leaves and isinstance(x, leaves)):
            if isinstance(x, torch.Tensor):
                if x.numel() > MAX_TENSOR_NUMEL:
                    fail(f'a tensor of {x.numel()} elements is over the limit of {MAX_TENSOR_NUMEL}')
                budget[1] += x.numel() * x.element_size()
                if budget[1] > MAX_TENSOR_BYTES:
                    fail(f'more than {MAX_TENSOR_BYTES >> 30} GiB of tensors')
            return
        children = None
        if isinstance(x, dict):
            children = x
        elif isinstance(x, (list, tuple, set, frozenset)):
            children = dict(enumerate(x))
        elif expand is not None:
            children = expand(x)
        if children is None:
            fail(f'{type(x).__module__}.{type(x).__qualname__} is not plain data')
        if depth >= max_depth:
            fail(f'nested more than {max_depth} levels deep')
        if id(x) in on_path:
            fail('contains itself (a cycle)')
        on_path.add(id(x))
        for key, value in children.items():
            if not isinstance(key, (str, int)):
                fail(f'has a key that is {brief(key)}, not a string or integer')
            path.append(_key_text(key))
            visit(value, depth + 1)
            path.pop()
        on_path.discard(id(x))

    visit(obj, 0)
    return obj

#----------------------------------------------------------------------------

def check_kwargs(kwargs, where: str, class_name: str) -> dict:
    """Plain, bounded keyword arguments of `class_name`; nested class names only where NESTED allows."""
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise RefusedError(f'{where}: the arguments of {class_name} are {brief(kwargs)}, not a dict of named values.')
    check_data(kwargs, where, max_items=MAX_KWARGS_ITEMS, max_depth=16)
    nested = NESTED.get(class_name, {})

    def visit(x, at, top):
        if isinstance(x, dict):
            for key, value in x.items():
                here = f'{at}.{key}' if at else str(key)
                if key == 'class_name' and top is None:
                    raise RefusedError(f'{where}: "{here}" names a class ({brief(value)}) where {class_name} takes none; '
                                       f'refusing to build it.')
                if top is not None and key == 'class_name':
                    if value is not None and value not in SLOTS[top]:
                        raise RefusedError(f'{where}: "{here}" is {brief(value)}, which is not a {top} class of this code '
                                           f'(allowed: {", ".join(SLOTS[top])}); refusing to build it.')
                    continue
                _check_value(key, value, here)
                if not at and key in nested and not isinstance(value, dict):
                    raise RefusedError(f'{where}: "{here}" is {brief(value)}, not a dict of settings.')
                visit(value, here, nested.get(key) if not at else None)
        elif isinstance(x, (list, tuple)):
            if len(x) > MAX_LIST:
                raise RefusedError(f'{where}: "{at}" is a list of {len(x)} items, over the limit of {MAX_LIST}.')
            for i, value in enumerate(x):
                visit(value, f'{at}[{i}]', None)

    def _check_value(key, value, here):
        if key in STR_CHOICES and value not in STR_CHOICES[key]:
            raise RefusedError(f'{where}: "{here}" is {brief(value)}; it must be one of {", ".join(STR_CHOICES[key])}.')
        if isinstance(value, str) and len(value) > MAX_STR:
            raise RefusedError(f'{where}: "{here}" is a string of {len(value)} characters, over the limit of {MAX_STR}.')
        if isinstance(value, float) and not math.isfinite(value):
            raise RefusedError(f'{where}: "{here}" is {value}; give a finite number.')
        if key in INT_LIMITS and value is not None:
            lo, hi = INT_LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise RefusedError(f'{where}: "{here}" is {brief(value)}; it must be an integer in {lo}..{hi}.')

    visit(kwargs, '', None)
    _check_channels(kwargs, where)
    return kwargs


def _check_channels(kwargs: dict, where: str):
    """channels = channel_base // resolution must stay >= 1 at the output resolution (else layers without
    channels, which fail at their first use)."""
    res = kwargs.get('img_resolution')
    bases = [kwargs.get('channel_base')] + [v.get('channel_base') for v in kwargs.values() if isinstance(v, dict)]
    for base in bases:
        if isinstance(res, int) and isinstance(base, int) and base < res:
            raise RefusedError(f'{where}: channel_base={base} is below img_resolution={res}, which leaves layers without channels.')


def check_spec(slot: str, spec, where: str) -> tuple:
    """(class_name, kwargs) of a dict {'class_name': ..., **kwargs} for `slot`, checked; raises RefusedError."""
    if not isinstance(spec, dict):
        raise RefusedError(f'{where}: the {slot} settings are {brief(spec)}, not a dict with a class_name.')
    class_name = spec.get('class_name')
    if class_name not in SLOTS[slot]:
        raise RefusedError(f'{where}: "class_name" is {brief(class_name)}, which is not a {slot} class of this code '
                           f'(allowed: {", ".join(SLOTS[slot])}); refusing to build it.')
    kwargs = {k: v for k, v in spec.items() if k != 'class_name'}
    return class_name, check_kwargs(kwargs, where, class_name)


def get_class(slot: str, class_name: str):
    """The class named `class_name`, which must be on the list of `slot` (imports our own module only)."""
    if class_name not in SLOTS[slot]:
        raise RefusedError(f'{class_name!r} is not a {slot} class of this code (allowed: {", ".join(SLOTS[slot])}).')
    module, _, name = class_name.rpartition('.')
    return getattr(importlib.import_module(module), name)


# Classes whose **kwargs take more settings (passed on to the synthesis blocks); any other class's
# **kwargs only forward what it names itself (ImageFolderDataset -> Dataset), so its named parameters are all.
KWARGS_PASS_THROUGH = ('training.networks.Generator', 'training.networks.SynthesisNetwork')


def check_keys(cls, kwargs: dict, where: str, class_name: str):
    """Every key names a parameter of cls (unless its **kwargs take more): a stored typo or an extra key is
    one sentence here, not a TypeError later."""
    import inspect
    if class_name in KWARGS_PASS_THROUGH:
        return
    params = [name for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != 'self' and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        raise RefusedError(f'{where}: {class_name} takes no argument {", ".join(brief(k) for k in unknown[:3])}; refusing the stored settings.')


def construct(slot: str, spec, where: str, **runtime):
    """Build `spec` ({'class_name', **kwargs} from a file) for `slot`, plus `runtime` kwargs from the code.
    Any failure of the constructor on the file's values is one sentence (RefusedError)."""
    class_name, kwargs = check_spec(slot, spec, where)
    clash = sorted(set(kwargs) & set(runtime))
    if clash:
        raise RefusedError(f'{where}: the stored {class_name} arguments set {", ".join(clash)}, which the code sets; refusing them.')
    cls = get_class(slot, class_name)
    check_keys(cls, kwargs, where, class_name)
    try:
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            numel = _fake_numel(cls, kwargs, runtime)
            if numel > MAX_MODULE_NUMEL:
                raise RefusedError(f'{where}: the stored arguments make a {class_name} of {numel} parameters, over the limit '
                                   f'of {MAX_MODULE_NUMEL}; refusing to build it.')
        return cls(**kwargs, **runtime)
    except RefusedError:
        raise
    except Exception as e:  # the file's values do not fit the constructor (TypeError, ValueError, AssertionError, ...)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise RefusedError(f'{where}: cannot build {class_name} from the stored arguments ({type(e).__name__}: {reason}).') from None


def _fake_numel(cls, kwargs, runtime) -> int:
    """Parameter + buffer elements of cls(**kwargs), built with fake tensors: sizes known, nothing allocated,
    the random state untouched."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
    except ImportError:  # a PyTorch without fake tensors: the per-key limits above still hold
        return 0
    with torch.random.fork_rng(devices=[]), FakeTensorMode(allow_non_fake_inputs=True):
        module = cls(**kwargs, **runtime)
        return sum(t.numel() for t in list(module.parameters()) + list(module.buffers()))

#----------------------------------------------------------------------------

# Stored run options (train.py's training_options / a snapshot's "options"): the class-building keys with
# their slot and the kwargs the training loop sets itself, then the plain values and their types.
OPTION_SLOTS = {
    'training_set_kwargs': ('dataset', ()), 'G_kwargs': ('G', ('c_dim', 'img_resolution', 'img_channels')),
    'D_kwargs': ('D', ('c_dim', 'img_resolution', 'img_channels')), 'G_opt_kwargs': ('optimizer', ('params',)),
    'D_opt_kwargs': ('optimizer', ('params',)), 'loss_kwargs': ('loss', ('device', 'G', 'D', 'augment_pipe')),
    'augment_kwargs': ('augment_pipe', ()),
}
_INT, _NUM, _BOOL, _OPT_INT, _OPT_NUM = (int,), (int, float), (bool,), (int, type(None)), (int, float, type(None))
OPTION_VALUES = {
    'random_seed': _INT, 'num_gpus': _INT, 'batch_size': _INT, 'batch_gpu': _INT, 'ema_kimg': _NUM, 'ema_rampup': _OPT_NUM,
    'G_reg_interval': _OPT_INT, 'D_reg_interval': _OPT_INT, 'augment_p': _NUM, 'ada_target': _OPT_NUM, 'ada_interval': _INT,
    'ada_kimg': _NUM, 'total_kimg': _NUM, 'kimg_per_tick': _NUM, 'image_snapshot_ticks': _OPT_INT,
    'network_snapshot_ticks': _OPT_INT, 'cudnn_benchmark': _BOOL, 'allow_tf32': _BOOL, 'use_cuda': _BOOL,
    'fast': (str,), 'metrics': (list,), 'data_loader_kwargs': (dict,), 'preset': (str,),
}
OPTION_RANGES = {  # numbers a division, a modulo or a loop bound uses
    'random_seed': (0, (1 << 63) - 1), 'num_gpus': (1, 4096), 'batch_size': (1, 1 << 16), 'batch_gpu': (1, 1 << 16),
    'G_reg_interval': (1, 1 << 20), 'D_reg_interval': (1, 1 << 20), 'ada_interval': (1, 1 << 20), 'ada_kimg': (1e-6, 1e9),
    'image_snapshot_ticks': (1, 1 << 30), 'network_snapshot_ticks': (1, 1 << 30), 'kimg_per_tick': (1e-6, 1e9),
    'total_kimg': (0, 1e9), 'ema_kimg': (0, 1e9), 'augment_p': (0, 1), 'ada_target': (0, 1),
}
IGNORED_OPTIONS = ('options', 'run_dir', 'resume_snapshot', 'resume_pkl', 'rank', 'device')
REQUIRED_OPTIONS = ('training_set_kwargs', 'G_kwargs', 'D_kwargs', 'G_opt_kwargs', 'D_opt_kwargs', 'loss_kwargs', 'batch_size')


def run_options(stored, where: str) -> dict:
    """Sanitise stored run options for an exact resume: only known keys; each class-building entry names
    an allow-listed class of its slot (so the class names are this code's) with plain, bounded kwargs
    that leave the loop's own arguments alone; every other value has its expected type and is finite.
    Returns a copy as nested EasyDicts; raises RefusedError naming the key."""
    import json
    import dnnlib
    check_data(stored, where, max_items=MAX_KWARGS_ITEMS * 4, max_depth=16)
    if not isinstance(stored, dict):
        raise RefusedError(f'{where}: the stored run options are {brief(stored)}, not a dict.')
    missing = [k for k in REQUIRED_OPTIONS if k not in stored]
    if missing:
        raise RefusedError(f'{where}: the stored run options lack {", ".join(missing)}; the file is not a run snapshot of this code.')
    out = dnnlib.EasyDict()
    for key, value in stored.items():
        if key in IGNORED_OPTIONS:
            continue
        if key in OPTION_SLOTS:
            slot, reserved = OPTION_SLOTS[key]
            if value is None and key == 'augment_kwargs':
                out[key] = None
                continue
            class_name, kwargs = check_spec(slot, value, f'{where}: {key}')
            check_keys(get_class(slot, class_name), kwargs, f'{where}: {key}', class_name)
            if key == 'G_kwargs':
                value = dict(value, mapping_kwargs=value.get('mapping_kwargs', {}))  # what model_of() reads
            taken = sorted(set(kwargs) & set(reserved))
            if taken:
                raise RefusedError(f'{where}: {key} sets {", ".join(taken)}, which the training loop sets itself; refusing it.')
        elif key in OPTION_VALUES:
            types = OPTION_VALUES[key]
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise RefusedError(f'{where}: "{key}" is {brief(value)}, not a {" or ".join(t.__name__ for t in types)}.')
            if isinstance(value, (list, dict)):
                check_kwargs(value if isinstance(value, dict) else {'items': value}, f'{where}: {key}', key)
            if isinstance(value, float) and not math.isfinite(value):
                raise RefusedError(f'{where}: "{key}" is {value}; give a finite number.')
            if key in OPTION_RANGES and isinstance(value, (int, float)) and not isinstance(value, bool):
                lo, hi = OPTION_RANGES[key]
                if not lo <= value <= hi:
                    raise RefusedError(f'{where}: "{key}" is {brief(value)}; it must lie in {lo:g}..{hi:g}.')
        else:
            raise RefusedError(f'{where}: the stored run options hold an unknown key {brief(key)}; refusing to pass it to the training loop.')
        out[key] = json.loads(json.dumps(value), object_hook=dnnlib.EasyDict)
    return out


def resume_state(saved: dict, where: str, batch_size: int):
    """The counters of an exact resume: non-negative integers on the batch grid, augment p in [0, 1]."""
    for key in ('cur_nimg', 'cur_tick', 'batch_idx'):
        value = saved.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RefusedError(f'{where}: "{key}" is {brief(value)}, not a non-negative integer; the file is corrupt.')
    if saved['cur_nimg'] % batch_size:
        raise RefusedError(f'{where}: "cur_nimg" ({saved["cur_nimg"]}) is not a multiple of the batch ({batch_size}); the file is corrupt.')
    p = saved.get('augment_p', 0.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise RefusedError(f'{where}: "augment_p" is {brief(p)}, not a probability; the file is corrupt.')


def check_zip(f, where: str, max_entries: int = 100_000):
    """A torch.save zip (open binary file, position kept) whose entries are stored uncompressed and fit the
    file: nothing can inflate to more than the file holds. Raises RefusedError otherwise."""
    import zipfile
    pos = f.tell()
    try:
        f.seek(0, 2)
        size = f.tell() - pos
        f.seek(pos)
        try:
            infos = zipfile.ZipFile(f).infolist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise RefusedError(f'cannot read {where}: the file is truncated, corrupt or not a snapshot ({e}).') from None
        if len(infos) > max_entries:
            raise RefusedError(f'{where} has {len(infos)} zip entries, over the limit of {max_entries}; refusing to read it.')
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise RefusedError(f'{where}: zip entry {brief(info.filename)} is compressed, which torch.save never writes; '
                                   f'refusing to inflate it.')
            total += info.file_size
        if total > min(size, MAX_TENSOR_BYTES + (1 << 30)):
            raise RefusedError(f'{where}: its zip entries claim {total} bytes, more than the file holds ({size}); refusing to read it.')
    finally:
        f.seek(pos)

#----------------------------------------------------------------------------
