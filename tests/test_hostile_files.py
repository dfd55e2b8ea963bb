"""Hostile files, written here: none may run code, write or delete a file, or take unbounded time or memory.

Every payload that would act, if the loaders built what it names, tries to create the file SENTINEL or to
truncate VICTIM; each must be refused with one sentence, inside `bounded()` (a time and memory limit).
"""
import contextlib
import copy
import io
import os
import pickle
import re
import resource
import signal
import struct
import zipfile

import pytest
import torch

import dnnlib
import legacy
from tests import fixtures_nvidia as fx
from torch_utils import allowlist, safe_pickle, snapshot
from training.networks import Generator

#----------------------------------------------------------------------------
# Limits and checks.

@contextlib.contextmanager
def bounded(seconds=20, extra_bytes=3 << 30):
    """At most `seconds` and `extra_bytes` more address space than is mapped now, for one hostile load."""
    with open('/proc/self/statm') as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    def timeout(*_):
        raise TimeoutError(f'a hostile file took more than {seconds} s')
    old_handler = signal.signal(signal.SIGALRM, timeout)
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra_bytes, old_limit[1]))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def refused(load, match=None):
    """`load()` raises one of our errors with a one-line message, within the bounds; returns the message."""
    with bounded():
        with pytest.raises((ValueError, pickle.UnpicklingError)) as info:
            load()
    message = str(info.value)
    assert '\n' not in message and len(message) < 600, message
    assert not isinstance(info.value, (RecursionError, MemoryError))
    if match is not None:
        assert match in message, message
    return message


@pytest.fixture
def sentinel(tmp_path):
    path = tmp_path / 'SENTINEL'
    victim = tmp_path / 'VICTIM'
    victim.write_text('keep me')
    yield path, victim
    assert not path.exists(), 'a hostile file ran code'
    assert victim.read_text() == 'keep me', 'a hostile file truncated a file'

#----------------------------------------------------------------------------
# Payload builders.

def small_G():
    return Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=1),
                     synthesis_kwargs=dict(channel_base=64, channel_max=8))


def pt_file(path, mutate=None, **extra):
    """Our snapshot format with a G record, after `mutate(record)`; saved with torch.save as an attacker would."""
    record = snapshot.module_to_record(small_G())
    if mutate is not None:
        mutate(record)
    torch.save(dict(format='cggan-snapshot', version=1, G=record, **extra), path)
    return str(path)


def shared_bomb(depth=40):
    x = []
    for _ in range(depth):
        x = [x, x]
    return x


def cycle():
    x = []
    x.append(x)
    return x


def hash_bomb_dict(depth=40) -> bytes:
    """Pickle opcodes of {T: 1}, T = (T', T') nested `depth` deep: a few hundred bytes whose key would take
    2^depth steps to hash (written by hand: building it here would hash it)."""
    return b'}q\x01' + bomb_key(depth) + b'K\x01s'


def bomb_key(depth=40) -> bytes:
    """Opcodes that leave T (memo 0) on the stack: T = (), then T = (T, T) `depth` times."""
    return b')q\x000' + b'h\x00h\x00\x86q\x000' * depth + b'h\x00'


def nvidia_pkl(path, mapping_kwargs=None, **extra):
    G = small_G()
    passed = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=mapping_kwargs or dict(num_layers=1),
                  synthesis_kwargs=dict(channel_base=64, channel_max=8))
    path.write_bytes(fx.nvidia_pickle_bytes(dict(G=G, G_ema=G), dict(G=passed, G_ema=passed), extra=extra))
    return str(path)


def load_pt(path):
    return legacy.load_network(path)


def load_bytes(data):
    return legacy.load_network_pkl(io.BytesIO(data))


def legacy_storage(numel, payload):
    """torch's legacy storage format (what Storage.__reduce__ writes) with a chosen declared size."""
    f = io.BytesIO()
    for obj in (0x1950a86a20f9469cfc6c, 1001, dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))):
        pickle.dump(obj, f, protocol=2)
    class P(fx.FakePickler):
        def persistent_id(self, obj):
            return ('storage', fx.FakeGlobal('torch', 'FloatStorage'), 'k', 'cpu', numel, None) if obj == 'STORAGE' else None
    P(f, protocol=2).dump('STORAGE')
    pickle.dump(['k'], f, protocol=2)
    return f.getvalue() + struct.pack('<q', numel) + payload


def tensor_from(storage_bytes, size, stride):
    storage = fx.FakeObject(fx.FakeGlobal('torch.storage', '_load_from_bytes'), (storage_bytes,))
    import collections
    return fx.FakeObject(fx.FakeGlobal('torch._utils', '_rebuild_tensor_v2'), (storage, 0, size, stride, False, collections.OrderedDict()))

#----------------------------------------------------------------------------
# Our .pt snapshots: class names, kwargs, sizes, structure.

def test_pt_callable_under_training_is_not_built(tmp_path, sentinel):
    def mutate(r):
        r['class_name'] = 'training.training_loop.training_loop'
        r['init_kwargs'] = dict(run_dir=str(tmp_path), training_set_kwargs=dict(class_name='os.system', command=f'touch {sentinel[0]}'))
    refused(lambda: load_pt(pt_file(tmp_path / 'a.pt', mutate)), 'not a G class of this code')


@pytest.mark.parametrize('name', ['logging.basicConfig', 'tarfile.open', 'training.networks.Discriminator', 'os.system'])
def test_pt_mapping_class_name_is_allow_listed(tmp_path, sentinel, name):
    def mutate(r):
        r['init_kwargs']['mapping_kwargs'] = dict(class_name=name, filename=str(sentinel[1]), filemode='w', name=str(sentinel[1]), mode='w')
    refused(lambda: load_pt(pt_file(tmp_path / 'm.pt', mutate)), 'mapping_kwargs.class_name')


def test_pt_training_set_kwargs_class_is_allow_listed(tmp_path, sentinel):
    path = pt_file(tmp_path / 't.pt', training_set_kwargs=dict(class_name='os.system', command=f'touch {sentinel[0]}'))
    refused(lambda: load_pt(path), 'training_set_kwargs')


def test_pt_class_name_in_an_unexpected_place(tmp_path, sentinel):
    def mutate(r):
        r['init_kwargs']['synthesis_kwargs']['block_kwargs'] = dict(class_name='os.system', command=f'touch {sentinel[0]}')
    refused(lambda: load_pt(pt_file(tmp_path / 'n.pt', mutate)), 'names a class')


@pytest.mark.parametrize('payload,match', [(shared_bomb, 'more than'), (cycle, 'cycle')])
def test_pt_shared_references_and_cycles(tmp_path, payload, match):
    path = pt_file(tmp_path / 'b.pt', lambda r: r['init_kwargs']['synthesis_kwargs'].update(x=payload()))
    refused(lambda: load_pt(path), match)


def test_pt_hash_bomb_key(tmp_path):
    torch.save(dict(format='cggan-snapshot', version=1), tmp_path / 'plain.pt')
    pkl = b'\x80\x02' + hash_bomb_dict() + b'.'
    _rezip(tmp_path / 'plain.pt', tmp_path / 'hash.pt', patch_pkl=lambda data: pkl)
    refused(lambda: load_pt(str(tmp_path / 'hash.pt')), 'dict key')


@pytest.mark.parametrize('key,value,match', [('img_resolution', 2**40, 'img_resolution'), ('img_channels', 10**6, 'img_channels'),
                                             ('z_dim', 10**9, 'z_dim'), ('w_dim', float('nan'), 'w_dim'),
                                             ('synthesis_kwargs', dict(resample_filter=[1] * 9000), 'over the limit of 64'),
                                             ('synthesis_kwargs', dict(activation='exec'), 'must be one of'),
                                             ('synthesis_kwargs', dict(channel_base=4), 'without channels'),
                                             ('synthesis_kwargs', dict(architecture='../x'), 'must be one of')])
def test_pt_sizes_are_bounded_before_allocation(tmp_path, key, value, match):
    refused(lambda: load_pt(pt_file(tmp_path / 's.pt', lambda r: r['init_kwargs'].update({key: value}))), match)


def test_pt_parameter_count_is_bounded_before_allocation(tmp_path):
    def mutate(r):  # every width inside its limit, but 64 layers of 4096^2 weights: 1G parameters
        r['init_kwargs']['mapping_kwargs'] = dict(num_layers=64, layer_features=4096)
    refused(lambda: load_pt(pt_file(tmp_path / 'p.pt', mutate)), 'over the limit of 134217728')


@pytest.mark.parametrize('field,value', [('state_dict', 5), ('init_kwargs', [1, 2]), ('training', 'yes'), ('class_name', ['x'])])
def test_pt_malformed_records(tmp_path, field, value):
    refused(lambda: load_pt(pt_file(tmp_path / 'r.pt', lambda r: r.update({field: value}))))


def test_pt_record_under_an_unknown_key_or_wrong_class_for_its_key(tmp_path):
    rec = snapshot.module_to_record(small_G())
    torch.save(dict(format='cggan-snapshot', version=1, G=rec, evil=copy.deepcopy(rec)), tmp_path / 'k.pt')
    refused(lambda: load_pt(str(tmp_path / 'k.pt')), '"evil" holds a network record')
    torch.save(dict(format='cggan-snapshot', version=1, D=rec), tmp_path / 'd.pt')
    refused(lambda: load_pt(str(tmp_path / 'd.pt')), 'not a D class')


def _rezip(src, dst, compress=None, patch_pkl=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w') as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if patch_pkl is not None and info.filename.endswith('data.pkl'):
                data = patch_pkl(data)
            kind = zipfile.ZIP_DEFLATED if compress and compress in info.filename else zipfile.ZIP_STORED
            zout.writestr(zipfile.ZipInfo(info.filename), data, compress_type=kind)


def test_pt_deflated_storage_is_not_inflated(tmp_path):
    torch.save(dict(format='cggan-snapshot', version=1, x=torch.zeros(1 << 24, dtype=torch.uint8)), tmp_path / 'big.pt')
    _rezip(tmp_path / 'big.pt', tmp_path / 'deflated.pt', compress='/data/')
    assert os.path.getsize(tmp_path / 'deflated.pt') < 1 << 20
    refused(lambda: load_pt(str(tmp_path / 'deflated.pt')), 'compressed')


def test_pt_storage_larger_than_its_record(tmp_path):
    torch.save(dict(format='cggan-snapshot', version=1, x=torch.zeros(3)), tmp_path / 'small.pt')
    # The storage record says 3 elements (BININT1 3 after 'cpu' and its BINPUT); claim 2**30 (BININT 0x40000000).
    patch = lambda data: re.sub(rb'(cpuq.)K\x03t', lambda m: m.group(1) + b'J\x00\x00\x00\x40t', data, count=1)
    _rezip(tmp_path / 'small.pt', tmp_path / 'claims.pt', patch_pkl=patch)
    with zipfile.ZipFile(tmp_path / 'claims.pt') as z:
        assert b'J\x00\x00\x00\x40' in z.read([n for n in z.namelist() if n.endswith('data.pkl')][0])
    refused(lambda: load_pt(str(tmp_path / 'claims.pt')), 'declares 1073741824 elements')

#----------------------------------------------------------------------------
# NVIDIA / i-StyleGAN pickles.

def test_pkl_mapping_class_name_is_allow_listed(tmp_path, sentinel):
    path = nvidia_pkl(tmp_path / 'm.pkl', mapping_kwargs=dict(class_name='logging.basicConfig', filename=str(sentinel[1]), filemode='w'))
    refused(lambda: load_pt(path), 'not a mapping class')


def test_pkl_training_set_kwargs_class_is_allow_listed(tmp_path, sentinel):
    path = nvidia_pkl(tmp_path / 't.pkl', training_set_kwargs=dict(class_name='os.system', command=f'touch {sentinel[0]}'))
    refused(lambda: load_pt(path), 'training_set_kwargs')


@pytest.mark.parametrize('payload,match', [(shared_bomb, 'more than'), (cycle, 'cycle')])
def test_pkl_shared_references_and_cycles(tmp_path, payload, match):
    path = nvidia_pkl(tmp_path / 'b.pkl', mapping_kwargs=dict(num_layers=1, x=payload()))
    refused(lambda: load_pt(path), match)


def test_pkl_build_slot_state_cannot_replace_methods():
    # GLOBAL dnnlib.EasyDict; BUILD (None, {'__setattr__': getattr}) on the class itself.
    data = (b'\x80\x02cdnnlib\nEasyDict\nN}X\x0b\x00\x00\x00__setattr__cbuiltins\ngetattr\ns\x86b.')
    before = dnnlib.EasyDict.__setattr__
    refused(lambda: load_bytes(data), 'sets the state of the class')
    assert dnnlib.EasyDict.__setattr__ is before
    d = dnnlib.EasyDict(); d.a = 1
    assert d == {'a': 1}


@pytest.mark.parametrize('state', [b'}X\x04\x00\x00\x00keysK\x01s', b'N}X\x01\x00\x00\x00aK\x01s\x86'])
def test_pkl_build_on_instances_keeps_methods(state):
    # An EasyDict instance whose state would shadow a method, or carries slot state.
    data = b'\x80\x02cdnnlib\nEasyDict\n)\x81' + state + b'b.'
    refused(lambda: load_bytes(data), 'EasyDict')


@pytest.mark.parametrize('data,what', [
    (b'\x80\x02ctorch\nTensor\nN}X\x01\x00\x00\x00xK\x01s\x86b.', 'BUILD on the Tensor class'),
    (b'\x80\x02ctorch\nTensor\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R.', 'torch.Tensor(2**40)'),
    (b'\x80\x02cnumpy\nndarray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R.', 'numpy.ndarray((2**40,))'),
    (b'\x80\x02c__builtin__\nbytearray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R.', 'bytearray(2**40)'),
    (b'\x80\x02B\x00\x00\x00\x40abc.', 'a 1 GiB length field in a tiny file'),
    (b'\x80\x05\x96\x00\x00\x00\x00\x00\x01\x00\x00abc.', 'BYTEARRAY8 of 2**40 bytes'),
])
def test_pkl_allocations_and_class_state_are_refused(data, what):
    refused(lambda: load_bytes(data))


def test_pkl_opcode_count_is_bounded(monkeypatch):
    monkeypatch.setattr(safe_pickle, 'MAX_OPS', 1000)  # the real bound is 5M opcodes; the mechanism is the same
    refused(lambda: load_bytes(b'\x80\x02' + b'N0' * 2000 + b'N.'), 'more than 1000 opcodes')


def test_pkl_legacy_storage_declaring_more_than_it_holds():
    data = fx.fake_dumps(dict(x=tensor_from(legacy_storage(1 << 40, b'\x00' * 16), (4,), (1,))))
    refused(lambda: load_bytes(data), 'more than its')


def test_pkl_legacy_storage_header_hash_bomb():
    head = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2)
    storage = head + b'\x80\x02' + hash_bomb_dict() + b'.'  # the "system info" pickle
    refused(lambda: load_bytes(fx.fake_dumps(dict(x=tensor_from(storage, (1,), (1,))))), 'dict key')


def test_pkl_tensor_view_outside_its_storage():
    data = fx.fake_dumps(dict(x=tensor_from(legacy_storage(4, b'\x00' * 16), (1 << 20,), (1,))))
    refused(lambda: load_bytes(data), 'outside its storage')
    data = fx.fake_dumps(dict(x=tensor_from(legacy_storage(4, b'\x00' * 16), (1 << 30, 1 << 30), (0, 0))))
    refused(lambda: load_bytes(data), 'over the limit')


def test_pkl_deflated_zip_storage_is_not_inflated():
    buf = io.BytesIO()
    torch.save(torch.zeros(1 << 24, dtype=torch.uint8).untyped_storage(), buf)
    deflated = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin, zipfile.ZipFile(deflated, 'w') as zout:
        for info in zin.infolist():
            zout.writestr(zipfile.ZipInfo(info.filename), zin.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)
    data = fx.fake_dumps(dict(x=tensor_from(deflated.getvalue(), (4,), (1,))))
    refused(lambda: load_bytes(data), 'compressed')


def test_pkl_hash_bomb_key():
    refused(lambda: load_bytes(b'\x80\x02' + hash_bomb_dict() + b'.'), 'dict key')
    key = bomb_key()  # the same key, given to constructors that hash it
    for ctor in (b'c__builtin__\nset\n', b'c__builtin__\nfrozenset\n'):
        refused(lambda: load_bytes(b'\x80\x02' + ctor + key + b'\x85\x85R.'), 'set item')
    for ctor in (b'ccollections\nOrderedDict\n', b'cdnnlib\nEasyDict\n'):
        refused(lambda: load_bytes(b'\x80\x02' + ctor + key + b'K\x01\x86\x85\x85R.'), 'dict key')

#----------------------------------------------------------------------------
# Stored run options (train.py --resume): class names from the allow-list, known keys, typed values.

def _options():
    base = dict(training_set_kwargs=dict(class_name='training.dataset.ImageFolderDataset', path='x.zip', resolution=32),
                G_kwargs=dict(class_name='training.networks.Generator', z_dim=8, w_dim=8, mapping_kwargs=dict(num_layers=2)),
                D_kwargs=dict(class_name='training.networks.Discriminator'), G_opt_kwargs=dict(class_name='torch.optim.Adam', lr=0.002),
                D_opt_kwargs=dict(class_name='torch.optim.Adam', lr=0.002), loss_kwargs=dict(class_name='training.loss.StyleGAN2Loss'),
                augment_kwargs=dict(class_name='training.augment.AugmentPipe', xflip=1), batch_size=8, total_kimg=1.0)
    return base


@pytest.mark.parametrize('mutate,match', [
    (lambda o: o['augment_kwargs'].update(class_name='os.system'), 'augment_kwargs'),
    (lambda o: o['G_kwargs'].update(class_name='training.training_loop.training_loop'), 'G_kwargs'),
    (lambda o: o['loss_kwargs'].update(class_name='training.loss.StyleGAN2Loss', device='cuda:7'), 'training loop sets itself'),
    (lambda o: o['G_kwargs']['mapping_kwargs'].update(class_name='logging.basicConfig'), 'mapping_kwargs.class_name'),
    (lambda o: o['training_set_kwargs'].update(class_name='tarfile.open'), 'training_set_kwargs'),
    (lambda o: o.update(log_fn='os.system'), 'unknown key'),
    (lambda o: o.update(batch_size='8'), 'batch_size'),
    (lambda o: o.update(total_kimg=float('inf')), 'finite'),
    (lambda o: o.update(G_reg_interval=0), 'must lie in'),
    (lambda o: o['loss_kwargs'].update(r1_gama=1), "takes no argument 'r1_gama'"),
    (lambda o: o['training_set_kwargs'].update(raw_shape=[1, 2]), "takes no argument 'raw_shape'"),
    (lambda o: o.update(batch_size=-8), 'must lie in'),
    (lambda o: o['loss_kwargs'].update(pl_batch_shrink=0), 'pl_batch_shrink'),
    (lambda o: o.update(metrics=shared_bomb(30)), 'more than'),
    (lambda o: o.pop('G_kwargs'), 'lack G_kwargs'),
    (lambda o: o['G_kwargs'].update(mapping_kwargs=5), 'not a dict of settings'),
])
def test_stored_run_options_are_sanitised(mutate, match):
    options = _options()
    assert allowlist.run_options(options, 'test').G_kwargs.class_name == 'training.networks.Generator'
    mutate(options)
    refused(lambda: allowlist.run_options(options, 'test'), match)

#----------------------------------------------------------------------------

def test_no_file_supplied_name_reaches_construct_by_name(tmp_path, monkeypatch):
    """dnnlib's by-name lookup only ever sees allow-listed names while files are read, good or hostile."""
    seen = []
    real = dnnlib.util.get_obj_by_name
    monkeypatch.setattr(dnnlib.util, 'get_obj_by_name', lambda name: seen.append(name) or real(name))
    good = snapshot.module_to_record(small_G())
    good['init_kwargs']['mapping_kwargs'] = dict(class_name='training.domain_flow.DomainFlowMapping', num_layers=1, i_dim=4)
    torch.save(dict(format='cggan-snapshot', version=1, G=good), tmp_path / 'good.pt')
    assert isinstance(load_pt(str(tmp_path / 'good.pt'))['G'], Generator)
    for name in ('os.system', 'training.training_loop.training_loop', 'logging.basicConfig'):
        path = pt_file(tmp_path / 'x.pt', lambda r: r['init_kwargs']['mapping_kwargs'].update(class_name=name))
        refused(lambda: load_pt(path))
        refused(lambda: load_pt(nvidia_pkl(tmp_path / 'x.pkl', mapping_kwargs=dict(class_name=name))))
    allowed = {n for names in allowlist.SLOTS.values() for n in names}
    assert seen and set(seen) <= allowed, set(seen) - allowed

#----------------------------------------------------------------------------
