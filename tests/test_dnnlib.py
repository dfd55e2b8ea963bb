"""dnnlib.util: atomic_write never leaves a partial file; format_time; construct_class_by_name."""
import os

import pytest

import dnnlib

#----------------------------------------------------------------------------

def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / 'sub' / 'out.txt'
    with dnnlib.util.atomic_write(str(path), 'w', durable=True) as f:
        f.write('first')
    assert path.read_text() == 'first'
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)                           # not mkstemp's 0600
    with pytest.raises(RuntimeError):
        with dnnlib.util.atomic_write(str(path), 'w') as f:
            f.write('second, half written')
            raise RuntimeError('killed mid-write')
    assert path.read_text() == 'first'                                                 # old content intact
    assert sorted(p.name for p in path.parent.iterdir()) == ['out.txt']                # no temp file left


def test_format_time_and_construct_by_name():
    assert [dnnlib.util.format_time(s) for s in (42, 187, 7509)] == ['42s', '3m 07s', '2h 05m 09s']
    d = dnnlib.util.construct_class_by_name(class_name='dnnlib.EasyDict', a=1)
    assert d.a == 1 and isinstance(d, dict)
    with pytest.raises(ValueError, match='dotted name'):
        dnnlib.util.get_obj_by_name('nodots')
