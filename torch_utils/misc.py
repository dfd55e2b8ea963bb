"""Small tensor and module helpers used across the networks and the training loop."""
import contextlib
import functools
import re
import warnings

import numpy as np
import torch

from dnnlib import EasyDict

#----------------------------------------------------------------------------
# Cached constant tensors: the same constant reused on the GPU is copied there only once.

_constant_cache = dict()

def constant(value, shape=None, dtype=None, device=None, memory_format=None):
    """A cached tensor holding `value` (broadcast to `shape`), on `device` with `dtype`."""
    value = np.asarray(value)
    shape = tuple(shape) if shape is not None else None
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    device = torch.device(device if device is not None else 'cpu')
    memory_format = memory_format if memory_format is not None else torch.contiguous_format
    key = (value.shape, value.dtype, value.tobytes(), shape, dtype, device, memory_format)
    tensor = _constant_cache.get(key)
    if tensor is None:
        tensor = torch.as_tensor(value.copy(), dtype=dtype, device=device)
        if shape is not None:
            tensor = tensor.expand(shape)
        tensor = tensor.contiguous(memory_format=memory_format)
        _constant_cache[key] = tensor
    return tensor

#----------------------------------------------------------------------------

class _SilenceTracerWarnings(warnings.catch_warnings):
    def __enter__(self):
        super().__enter__()
        warnings.simplefilter('ignore', category=torch.jit.TracerWarning)
        return self


def suppress_tracer_warnings():
    """Context manager that silences torch.jit.TracerWarning (shape values used as constants); a no-op
    while torch.compile traces, where touching the warnings filters would split the graph."""
    compiling = getattr(torch.compiler, 'is_compiling', None)
    return contextlib.nullcontext() if compiling is not None and compiling() else _SilenceTracerWarnings()

#----------------------------------------------------------------------------

def assert_shape(tensor, ref_shape):
    """Raise AssertionError unless `tensor.shape` matches `ref_shape` (None = any size)."""
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f'Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}')
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor) or isinstance(size, torch.Tensor):
            with suppress_tracer_warnings():
                torch._assert(torch.equal(torch.as_tensor(size), torch.as_tensor(ref_size)), f'Wrong size for dimension {idx}')
        elif size != ref_size:
            raise AssertionError(f'Wrong size for dimension {idx}: got {size}, expected {ref_size}')

#----------------------------------------------------------------------------

def profiled_function(fn):
    """Decorator: run `fn` inside torch.autograd.profiler.record_function(fn.__name__)."""
    @functools.wraps(fn)
    def decorator(*args, **kwargs):
        with torch.autograd.profiler.record_function(fn.__name__):
            return fn(*args, **kwargs)
    return decorator

#----------------------------------------------------------------------------

def params_and_buffers(module):
    assert isinstance(module, torch.nn.Module)
    return list(module.parameters()) + list(module.buffers())


def named_params_and_buffers(module):
    assert isinstance(module, torch.nn.Module)
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src_module, dst_module, require_all=False):
    """Copy every same-named parameter/buffer of src into dst (in place); keeps dst's requires_grad.

    require_all: raise KeyError if some tensor of dst has no counterpart in src.
    """
    assert isinstance(src_module, torch.nn.Module) and isinstance(dst_module, torch.nn.Module)
    src_tensors = dict(named_params_and_buffers(src_module))
    for name, tensor in named_params_and_buffers(dst_module):
        if name in src_tensors:
            if src_tensors[name].shape != tensor.shape:
                raise RuntimeError(f'{name} has shape {list(src_tensors[name].shape)} in the source, {list(tensor.shape)} here')
            tensor.copy_(src_tensors[name].detach())
        elif require_all:
            raise KeyError(f'copy_params_and_buffers: source has no tensor named "{name}"')


def copy_matching_params_and_buffers(src_module, dst_module):
    """Transfer: copy each same-named tensor of src whose shape matches dst's; returns (number copied, names kept)."""
    src_tensors = dict(named_params_and_buffers(src_module))
    copied, kept = 0, []
    for name, tensor in named_params_and_buffers(dst_module):
        if name in src_tensors and src_tensors[name].shape == tensor.shape:
            tensor.copy_(src_tensors[name].detach())
            copied += 1
        else:
            kept.append(name)
    return copied, kept

#----------------------------------------------------------------------------

@contextlib.contextmanager
def ddp_sync(module, sync):
    """Inside the block, gradients of a DistributedDataParallel module are all-reduced only if `sync`."""
    assert isinstance(module, torch.nn.Module)
    if sync or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        yield
    else:
        with module.no_sync():
            yield

#----------------------------------------------------------------------------

def check_ddp_consistency(module, ignore_regex=None):
    """Assert every parameter/buffer equals rank 0's copy (NaN/Inf compared as finite)."""
    assert isinstance(module, torch.nn.Module)
    for name, tensor in named_params_and_buffers(module):
        fullname = type(module).__name__ + '.' + name
        if ignore_regex is not None and re.fullmatch(ignore_regex, fullname):
            continue
        tensor = tensor.detach()
        if tensor.is_floating_point():
            tensor = torch.nan_to_num(tensor)
        other = tensor.clone()
        torch.distributed.broadcast(tensor=other, src=0)
        assert (tensor == other).all(), fullname

#----------------------------------------------------------------------------

def print_module_summary(module, inputs, max_nesting=3, skip_redundant=True, print_fn=print):
    """Run `module(*inputs)` once and print (with `print_fn`) a table of submodules: parameters, buffers, outputs."""
    assert isinstance(module, torch.nn.Module) and isinstance(inputs, (tuple, list))
    entries = []
    depth = [0]

    def pre_hook(_mod, _inputs):
        depth[0] += 1

    def post_hook(mod, _inputs, outputs):
        depth[0] -= 1
        if depth[0] <= max_nesting:
            outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
            entries.append(EasyDict(mod=mod, outputs=[t for t in outputs if isinstance(t, torch.Tensor)]))

    hooks = [mod.register_forward_pre_hook(pre_hook) for mod in module.modules()]
    hooks += [mod.register_forward_hook(post_hook) for mod in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()

    # Count each tensor once, at the first (innermost) module that owns or outputs it.
    seen = set()
    for e in entries:
        e.params = [t for t in e.mod.parameters() if id(t) not in seen]
        e.buffers = [t for t in e.mod.buffers() if id(t) not in seen]
        e.new_outputs = [t for t in e.outputs if id(t) not in seen]
        seen |= {id(t) for t in e.params + e.buffers + e.new_outputs}
    if skip_redundant:
        entries = [e for e in entries if e.params or e.buffers or e.new_outputs]

    names = {mod: name for name, mod in module.named_modules()}
    rows = [[type(module).__name__, 'Parameters', 'Buffers', 'Output shape', 'Datatype'], ['---'] * 5]
    param_total = buffer_total = 0
    for e in entries:
        name = '<top-level>' if e.mod is module else names[e.mod]
        n_params = sum(t.numel() for t in e.params)
        n_buffers = sum(t.numel() for t in e.buffers)
        shapes = [str(list(t.shape)) for t in e.outputs] or ['-']
        dtypes = [str(t.dtype).split('.')[-1] for t in e.outputs] or ['-']
        rows.append([name + (':0' if len(e.outputs) >= 2 else ''), str(n_params) if n_params else '-',
            str(n_buffers) if n_buffers else '-', shapes[0], dtypes[0]])
        rows += [[f'{name}:{i}', '-', '-', shapes[i], dtypes[i]] for i in range(1, len(e.outputs))]
        param_total += n_params
        buffer_total += n_buffers
    rows += [['---'] * 5, ['Total', str(param_total), str(buffer_total), '-', '-']]
    widths = [max(len(cell) for cell in column) for column in zip(*rows)]
    print_fn('')
    for row in rows:
        print_fn('  '.join(cell.ljust(width) for cell, width in zip(row, widths)))
    print_fn('')
    return outputs

#----------------------------------------------------------------------------
