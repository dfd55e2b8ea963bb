"""dataset_tool.py: every source kind on fixtures written here, round trips, and every user error."""
import gzip
import io
import json
import os
import pickle
import tarfile
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
from datasets import celeba, mnist
from training.dataset import ImageFolderDataset

CELEBA_ATTRS = ('5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair '
                'Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup '
                'High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose '
                'Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat '
                'Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young').split()
FASHION = '/usr/share/datasets/fashion-mnist'

#----------------------------------------------------------------------------
# Helpers.

def run(*args):
    """Run the CLI; returns (exit code, output). A user error must never print a traceback."""
    result = CliRunner().invoke(dataset_tool.main, [str(a) for a in args], prog_name='dataset_tool.py')
    if result.exit_code != 0:
        assert 'Traceback' not in result.output
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output

def ok(*args):
    code, out = run(*args)
    assert code == 0, out
    return out

def fails(match, *args, dest=None):
    code, out = run(*args)
    assert code != 0 and match in out, out
    last = out.split('\r')[-1].strip()                                          # after a cleared progress bar
    assert last.startswith('Error:') and last.count('\n') == 0 and match in last, out # one sentence
    if dest is not None: # nothing half written, no temporary left behind
        assert not os.path.exists(dest)
        parent = os.path.dirname(dest)
        assert not [f for f in os.listdir(parent) if f.startswith('.' + os.path.basename(dest))], os.listdir(parent)
    return out

def save(path, array, mode=None, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(array, mode).save(path, **kwargs) if mode else PIL.Image.fromarray(array).save(path, **kwargs)

def rand_img(seed, size=16, channels=3):
    shape = (size, size, channels) if channels > 1 else (size, size)
    return np.random.RandomState(seed).randint(0, 256, size=shape).astype(np.uint8)

def read(dest):
    return ImageFolderDataset(str(dest), use_labels=True)

def meta(dest):
    if str(dest).endswith('.zip'):
        with zipfile.ZipFile(dest) as z:
            return json.loads(z.read('dataset.json'))
    return json.loads(open(os.path.join(dest, 'dataset.json')).read())

#----------------------------------------------------------------------------
# Folder per domain, with odd files.

def make_tree(root):
    rgb, gray = rand_img(0), rand_img(1, channels=1)
    save(f'{root}/cat/a.png', rgb)
    save(f'{root}/cat/B.JPG', rand_img(2), quality=95)                          # upper-case extension
    save(f'{root}/cat/nested/deeper/c.png', gray)                               # nested folders, grayscale
    rgba = np.dstack([rand_img(3), np.where(np.arange(16)[None, :] < 8, 0, 255).repeat(16, 0).astype(np.uint8)])
    save(f'{root}/dog/d.png', rgba)                                             # RGBA: composited over white
    g16 = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    save(f'{root}/dog/e.png', g16)                                              # 16-bit grayscale
    save(f'{root}/dog/f.gif', rand_img(4), mode=None)                           # palette image
    open(f'{root}/cat/notes.txt', 'w').write('not an image')
    open(f'{root}/cat/.hidden.png', 'wb').write(b'garbage: hidden files are skipped')
    os.makedirs(f'{root}/.git'); open(f'{root}/.git/x.png', 'wb').write(b'garbage')
    open(f'{root}/README.md', 'w').write('top-level non-image files are ignored')
    return dict(rgb=rgb, gray=gray, rgba=rgba, g16=g16)

def test_folder_tree_with_odd_files(tmp_path):
    src = make_tree(tmp_path / 'src')
    dest = tmp_path / 'out.zip'
    out = ok('--source', tmp_path / 'src', '--dest', dest)
    assert 'Wrote 6 images, 16x16, 2 domains (cat, dog)' in out
    m = meta(dest)
    assert m['domains'] == ['cat', 'dog']
    assert [l for _, l in m['labels']] == [0, 0, 0, 1, 1, 1]
    with zipfile.ZipFile(dest) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        assert sorted(z.namelist())[0] == '00000/img00000000.png'
    ds = read(dest)
    assert len(ds) == 6 and ds.image_shape == [3, 16, 16] and ds.domain_names == ['cat', 'dog']
    # Order: cat/B.JPG, cat/a.png, cat/nested/deeper/c.png, dog/d.png, dog/e.png, dog/f.gif.
    assert np.array_equal(ds[1][0], src['rgb'].transpose(2, 0, 1))
    assert np.array_equal(ds[2][0], np.stack([src['gray']] * 3))                  # grey -> RGB (the set is colour)
    alpha = src['rgba'][:, :, 3:] / 255.0
    expect = np.round(src['rgba'][:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    assert np.array_equal(ds[3][0], expect.transpose(2, 0, 1))
    assert np.array_equal(ds[4][0][0], np.round(src['g16'] / 257).astype(np.uint8))
    assert np.array_equal(ds[0][1], [1, 0]) and np.array_equal(ds[5][1], [0, 1])

def test_grayscale_tree_stays_grayscale_and_resizes(tmp_path):
    for i in range(3):
        save(f'{tmp_path}/src/a/{i}.png', rand_img(i, size=64, channels=1))
        save(f'{tmp_path}/src/b/{i}.png', rand_img(10 + i, size=32, channels=1))
    dest = tmp_path / 'out'
    ok('--source', tmp_path / 'src', '--dest', dest, '--resolution', 16, '--resize-filter', 'box')
    ds = read(dest)
    assert ds.image_shape == [1, 16, 16] and len(ds) == 6
    expect = np.asarray(PIL.Image.fromarray(rand_img(0, size=64, channels=1)).resize((16, 16), PIL.Image.BOX))
    assert np.array_equal(ds[0][0][0], expect)

def test_center_crop_and_unlabelled_folder(tmp_path):
    img = rand_img(0, size=32)[:, :24]                                           # 24 wide, 32 high
    save(f'{tmp_path}/src/x.png', np.ascontiguousarray(img))
    dest = tmp_path / 'out.zip'
    ok('--source', tmp_path / 'src', '--dest', dest, '--transform', 'center-crop', '--resolution', 16)
    assert meta(dest)['labels'] is None
    ds = read(dest)
    assert not ds.has_labels and ds.num_domains == 0 and ds.domain_names is None
    expect = PIL.Image.fromarray(np.ascontiguousarray(img[4:28])).resize((16, 16), PIL.Image.LANCZOS)
    assert np.array_equal(ds[0][0], np.asarray(expect).transpose(2, 0, 1))

def test_numeric_shards_are_unconditional_and_labels_overrides(tmp_path):
    for shard in ('00000', '01000'):                                            # FFHQ's layout, as NVIDIA's tool reads it
        for i in range(2):
            save(f'{tmp_path}/ffhq/{shard}/{shard[:2]}{i:03d}.png', rand_img(i))
    ok('--source', tmp_path / 'ffhq', '--dest', tmp_path / 'auto.zip')
    assert meta(tmp_path / 'auto.zip')['labels'] is None and not read(tmp_path / 'auto.zip').has_labels
    ok('--source', tmp_path / 'ffhq', '--dest', tmp_path / 'byfolder.zip', '--labels', 'folders')
    assert [l for _, l in meta(tmp_path / 'byfolder.zip')['labels']] == [0, 0, 1, 1]
    assert meta(tmp_path / 'byfolder.zip')['domains'] == ['00000', '01000']
    for d in ('cat', '2'):                                                      # one non-numeric name: domains
        save(f'{tmp_path}/mixed/{d}/0.png', rand_img(0))
    ok('--source', tmp_path / 'mixed', '--dest', tmp_path / 'mixed.zip')
    assert meta(tmp_path / 'mixed.zip')['domains'] == ['2', 'cat']
    ok('--source', tmp_path / 'mixed.zip', '--dest', tmp_path / 'none.zip', '--labels', 'none')   # any source
    assert meta(tmp_path / 'none.zip')['labels'] is None and 'domains' not in meta(tmp_path / 'none.zip')
    fails('--labels=folders applies to folders', '--source', tmp_path / 'mixed.zip', '--dest', tmp_path / 'x.zip', '--labels', 'folders')
    save(f'{tmp_path}/flat/0.png', rand_img(0))
    fails('needs domain sub-folders', '--source', tmp_path / 'flat', '--dest', tmp_path / 'y.zip', '--labels', 'folders')

def test_max_images_caps_the_total_not_each_domain(tmp_path):
    for d in 'ab':
        for i in range(10):
            save(f'{tmp_path}/src/{d}/{i}.png', rand_img(i))
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'out.zip', '--max-images', 8)
    labels = [l for _, l in meta(tmp_path / 'out.zip')['labels']]
    assert len(labels) == 8 and set(labels) == {0, 1}
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'again.zip', '--max-images', 8)
    assert (tmp_path / 'out.zip').read_bytes() == (tmp_path / 'again.zip').read_bytes()

def test_domain_names_and_overwrite(tmp_path):
    make_tree(tmp_path / 'src')
    dest = tmp_path / 'out.zip'
    ok('--source', tmp_path / 'src', '--dest', dest, '--domain-names', 'female,male')
    assert meta(dest)['domains'] == ['female', 'male']
    fails('exists and is not empty', '--source', tmp_path / 'src', '--dest', dest)
    ok('--source', tmp_path / 'src', '--dest', dest, '--overwrite', '--resolution', 8)
    assert read(dest).resolution == 8
    (tmp_path / 'full').mkdir(); (tmp_path / 'full' / 'x').write_text('x')
    fails('exists and is not empty', '--source', tmp_path / 'src', '--dest', tmp_path / 'full')
    fails('not a data set written by this tool', '--source', tmp_path / 'src', '--dest', tmp_path / 'full', '--overwrite')
    assert (tmp_path / 'full' / 'x').read_text() == 'x'
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'ours')
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'ours', '--overwrite', '--resolution', 8)
    assert read(tmp_path / 'ours').resolution == 8 and read(tmp_path / 'ours').num_domains == 2
    fails('gives 3 names but the source has 2 domains', '--source', tmp_path / 'src', '--dest', tmp_path / 'n.zip',
          '--domain-names', 'a,b,c')

def test_center_crop_wide_and_thread_count_do_not_change_output(tmp_path):
    img = np.zeros((30, 40, 3), np.uint8); img[:, 5:35] = 255                  # 40 wide, 30 high
    save(f'{tmp_path}/src/x.png', img)
    ok('--source', tmp_path / 'src', '--dest', tmp_path / 'w.zip', '--transform', 'center-crop-wide', '--resolution', '16x8')
    out = read(tmp_path / 'w.zip')[0][0]
    assert out.shape == (3, 16, 16)
    assert out[:, :4].max() == 0 and out[:, 12:].max() == 0                    # black bars above and below
    assert out[:, 6, 8].min() == 255                                           # the picture in the middle
    for d in 'ab':
        for i in range(5):
            save(f'{tmp_path}/many/{d}/{i}.png', rand_img(i, size=32))
    ok('--source', tmp_path / 'many', '--dest', tmp_path / 'one.zip', '--workers', 1, '--resolution', 16)
    ok('--source', tmp_path / 'many', '--dest', tmp_path / 'four.zip', '--workers', 4, '--resolution', 16)
    assert (tmp_path / 'one.zip').read_bytes() == (tmp_path / 'four.zip').read_bytes()

def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    def encode_then_interrupt(img):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return real_encode(img)
    real_encode = dataset_tool.encode_png
    monkeypatch.setattr(dataset_tool, 'encode_png', encode_then_interrupt)
    for dest in [tmp_path / 'out.zip', tmp_path / 'out']:
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            dataset_tool.convert_dataset('builtin:shapes', str(dest), resolution=16, max_images=100, progress=False, workers=1)
        assert os.listdir(tmp_path) == []
    monkeypatch.setattr(dataset_tool, 'encode_png', real_encode)
    dataset_tool.convert_dataset('builtin:shapes', str(tmp_path / 'keep.zip'), resolution=16, max_images=4, progress=False, workers=1)
    old = (tmp_path / 'keep.zip').read_bytes()
    monkeypatch.setattr(dataset_tool, 'encode_png', encode_then_interrupt)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        dataset_tool.convert_dataset('builtin:shapes', str(tmp_path / 'keep.zip'), resolution=16, max_images=100,
                                     overwrite=True, progress=False, workers=1)
    assert os.listdir(tmp_path) == ['keep.zip'] and (tmp_path / 'keep.zip').read_bytes() == old

#----------------------------------------------------------------------------
# CelebA.

def make_celeba(root, n=8, bad_line=None):
    os.makedirs(f'{root}/img_align_celeba')
    rnd = np.random.RandomState(0)
    values = rnd.choice([-1, 1], size=(n, 40))
    lines = [str(n), ' '.join(CELEBA_ATTRS) + ' ']
    for i in range(n):
        name = f'{i + 1:06d}.jpg'
        lines.append(name + ' ' + ' '.join(f'{v:2d}' for v in values[i]))
        img = np.full((218, 178, 3), 30, np.uint8)
        img[121 - 64:121 + 64, 89 - 64:89 + 64] = 200 + 5 * i                  # the face box
        PIL.Image.fromarray(img).save(f'{root}/img_align_celeba/{name}', quality=95)
    if bad_line is not None:
        lines[bad_line - 1] = lines[bad_line - 1].rsplit(' ', 1)[0]             # drop a value
    open(f'{root}/list_attr_celeba.txt', 'w').write('\n'.join(lines) + '\n')
    open(f'{root}/list_eval_partition.txt', 'w').write(''.join(f'{i + 1:06d}.jpg {[0, 0, 0, 0, 1, 1, 2, 2][i % 8]}\n' for i in range(n)))
    return (values > 0).astype(int)

def test_celeba_one_attribute(tmp_path):
    attrs = make_celeba(tmp_path / 'celeba')
    dest = tmp_path / 'out.zip'
    ok('--source', tmp_path / 'celeba', '--dest', dest, '--domains', 'Male', '--resolution', 32)
    m = meta(dest)
    male = CELEBA_ATTRS.index('Male')
    assert m['domains'] == ['not_Male', 'Male']
    assert [l for _, l in m['labels']] == list(attrs[:, male])
    assert m['factors']['names'] == CELEBA_ATTRS
    assert [v for _, v in m['factors']['values']] == attrs.tolist()
    ds = read(dest)
    assert ds.resolution == 32 and np.array_equal(ds.get_factors(3), attrs[3])
    # The face-centred crop keeps only the face box (value 200 + 5 i), not the surround (30).
    for i in range(len(ds)):
        assert np.abs(ds[i][0].astype(int) - (200 + 5 * i)).max() <= 8

def test_celeba_two_attributes_and_split(tmp_path):
    attrs = make_celeba(tmp_path / 'celeba')
    dest = tmp_path / 'out'
    ok('--source', tmp_path / 'celeba', '--dest', dest, '--domains', 'male,Smiling', '--split', 'train', '--resolution', 16)
    m = meta(dest)
    assert m['domains'] == ['not_Male+not_Smiling', 'not_Male+Smiling', 'Male+not_Smiling', 'Male+Smiling']
    male, smile = CELEBA_ATTRS.index('Male'), CELEBA_ATTRS.index('Smiling')
    train = [0, 1, 2, 3]
    assert [l for _, l in m['labels']] == [2 * attrs[i, male] + attrs[i, smile] for i in train]
    assert read(dest).label_dim == 4
    assert celeba.domain_names(['A']) == ['not_A', 'A']

def test_celeba_errors(tmp_path):
    make_celeba(tmp_path / 'celeba')
    dest = str(tmp_path / 'out.zip')
    out = fails('Unknown CelebA attribute "Beard"', '--source', tmp_path / 'celeba', '--dest', dest, '--domains', 'Male,Beard', dest=dest)
    assert 'No_Beard' in out and '5_o_Clock_Shadow' in out and 'Young' in out  # the valid ones are listed
    make_celeba(tmp_path / 'bad', bad_line=5)
    fails('list_attr_celeba.txt", line 5', '--source', tmp_path / 'bad', '--dest', dest, '--domains', 'Male', dest=dest)
    os.remove(tmp_path / 'celeba' / 'list_eval_partition.txt')
    fails('needs', '--source', tmp_path / 'celeba', '--dest', dest, '--split', 'val', dest=dest)
    os.remove(tmp_path / 'celeba' / 'img_align_celeba' / '000002.jpg')
    fails('"000002.jpg" listed in list_attr_celeba.txt is missing', '--source', tmp_path / 'celeba', '--dest', dest, dest=dest)

def test_celeba_attribute_file_header_errors(tmp_path):
    make_celeba(tmp_path / 'c')
    path = tmp_path / 'c' / 'list_attr_celeba.txt'
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(['9'] + lines[1:]) + '\n')
    fails('line 1: the header announces 9 images but 8 are listed', '--source', tmp_path / 'c', '--dest', tmp_path / 'o.zip')
    path.write_text('\n'.join(lines[:4] + [lines[4].replace(' 1', ' 7', 1).replace('-1', ' 7', 1)] + lines[5:]) + '\n')
    fails('line 5: attribute values must be 1 or -1', '--source', tmp_path / 'c', '--dest', tmp_path / 'o.zip')

#----------------------------------------------------------------------------
# MNIST family (IDX files).

def write_idx(path, array, magic_ndim=None):
    header = bytes([0, 0, 8, magic_ndim or array.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if str(path).endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(data)

def make_mnist(root, n_train=20, n_test=10):
    os.makedirs(root)
    rnd = np.random.RandomState(0)
    imgs = rnd.randint(0, 256, size=(n_train + n_test, 28, 28)).astype(np.uint8)
    labels = rnd.randint(0, 10, size=n_train + n_test).astype(np.uint8)
    write_idx(f'{root}/train-images-idx3-ubyte.gz', imgs[:n_train])
    write_idx(f'{root}/train-labels-idx1-ubyte.gz', labels[:n_train])
    write_idx(f'{root}/t10k-images-idx3-ubyte', imgs[n_train:])                 # mixed: gz and not
    write_idx(f'{root}/t10k-labels.idx1-ubyte', labels[n_train:])               # the other spelling
    return imgs, labels

def test_nvidia_spellings_mnist_images_file_and_cifar10_archive(tmp_path):
    imgs, labels = make_mnist(tmp_path / 'mnist')
    ok('--source', tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz', '--dest', tmp_path / 'train.zip')   # NVIDIA's form
    ds = read(tmp_path / 'train.zip')
    assert len(ds) == 20 and [int(np.argmax(ds.get_label(i))) for i in range(20)] == labels[:20].tolist()
    assert np.array_equal(ds[3][0][0, 2:30, 2:30], imgs[3])                     # zero-padded to 32x32
    rnd = np.random.RandomState(0)
    data = rnd.randint(0, 256, size=(5, 4, 3072)).astype(np.uint8)
    with tarfile.open(tmp_path / 'cifar-10-python.tar.gz', 'w:gz') as tar:
        for b in range(5):
            blob = pickle.dumps({'batch_label': f'batch {b}', 'labels': [(b + i) % 10 for i in range(4)], 'data': data[b],
                                 'filenames': [f'{i}.png' for i in range(4)]}, protocol=2)
            info = tarfile.TarInfo(f'cifar-10-batches-py/data_batch_{b + 1}')
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    ok('--source', tmp_path / 'cifar-10-python.tar.gz', '--dest', tmp_path / 'cifar.zip')
    ds = read(tmp_path / 'cifar.zip')
    assert len(ds) == 20 and ds.domain_names[:3] == ['airplane', 'automobile', 'bird'] and ds.label_dim == 10
    assert np.array_equal(ds[5][0], data[1, 1].reshape(3, 32, 32))               # CHW, in file order
    assert [int(np.argmax(ds.get_label(i))) for i in range(8)] == [0, 1, 2, 3, 1, 2, 3, 4]
    with tarfile.open(tmp_path / 'evil.tar.gz', 'w:gz') as tar:               # a batch that would run code
        blob = b'cos\nsystem\n(S"echo pwned"\ntR.'
        info = tarfile.TarInfo('cifar-10-batches-py/data_batch_1')
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    fails('is not a plain CIFAR-10 batch (refusing to load os.system', '--source', tmp_path / 'evil.tar.gz', '--dest', tmp_path / 'e.zip',
          dest=tmp_path / 'e.zip')

def test_mnist_coloured(tmp_path):
    imgs, labels = make_mnist(tmp_path / 'mnist')
    dest = tmp_path / 'out.zip'
    ok('--source', tmp_path / 'mnist', '--dest', dest, '--colours', 2, '--seed', 1)
    m = meta(dest)
    assert m['domains'] == ['red', 'green'] and m['factors']['names'] == ['class']
    assert [v[0] for _, v in m['factors']['values']] == labels.tolist()
    domain = np.random.RandomState(1).randint(2, size=30)
    assert [l for _, l in m['labels']] == domain.tolist()
    ds = read(dest)
    assert ds.image_shape == [3, 32, 32] and len(ds) == 30
    for i in [0, 1, 29]:
        img = ds[i][0]
        assert img[:, :2].max() == 0 and img[:, :, :2].max() == 0                 # 2-pixel black padding
        colour = np.array(mnist.PALETTE[domain[i]][1], dtype=np.float64)
        expect = np.round(imgs[i][None].astype(np.float32) / 255 * colour[:, None, None].astype(np.float32))
        assert np.array_equal(img[:, 2:30, 2:30], expect.astype(np.uint8))

def test_mnist_gray_split_and_resize(tmp_path):
    imgs, labels = make_mnist(tmp_path / 'mnist')
    dest = tmp_path / 'out'
    ok('--source', tmp_path / 'mnist', '--dest', dest, '--split', 'test', '--resolution', 16)
    ds = read(dest)
    assert ds.image_shape == [1, 16, 16] and len(ds) == 10
    assert ds.domain_names == [str(c) for c in range(10)]
    assert [int(np.argmax(ds.get_label(i))) for i in range(10)] == labels[20:].tolist()

def test_mnist_errors(tmp_path):
    make_mnist(tmp_path / 'm')
    dest = str(tmp_path / 'out.zip')
    write_idx(tmp_path / 'm' / 'train-images-idx3-ubyte.gz', np.zeros((20, 28, 28)), magic_ndim=2)
    fails('Wrong IDX header in', '--source', tmp_path / 'm', '--dest', dest, dest=dest)
    with gzip.open(tmp_path / 'm' / 'train-images-idx3-ubyte.gz', 'wb') as f:
        f.write(bytes([0, 0, 8, 3]) + (20).to_bytes(4, 'big') + (28).to_bytes(4, 'big') * 2 + b'\0' * 100)
    fails('need 15696 bytes but the file has 116', '--source', tmp_path / 'm', '--dest', dest, dest=dest)
    fails('--split=val does not exist', '--source', tmp_path / 'm', '--dest', dest, '--split', 'val', dest=dest)
    os.remove(tmp_path / 'm' / 't10k-labels.idx1-ubyte')
    fails('lacks t10k-labels-idx1-ubyte', '--source', tmp_path / 'm', '--dest', dest, '--split', 'test', dest=dest)
    fails('--colours applies to MNIST-format IDX files only', '--source', 'builtin:shapes', '--dest', dest, '--colours', 2, dest=dest)

@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_two_colours(tmp_path):
    dest = tmp_path / 'fmnist2.zip'
    ok('--source', FASHION, '--dest', dest, '--colours', 2, '--split', 'test', '--max-images', 200)
    ds = read(dest)
    assert len(ds) == 200 and ds.image_shape == [3, 32, 32] and ds.domain_names == ['red', 'green']
    p = ds.label_distribution()
    assert 0.35 < p[0] < 0.65
    assert ds.factor_names == ['class'] and 0 <= ds.get_factors(0)[0] <= 9

#----------------------------------------------------------------------------
# Pass-through of NVIDIA-format data sets.

def test_pass_through_keeps_labels_domains_factors(tmp_path):
    ok('--source', 'builtin:shapes', '--dest', tmp_path / 'a.zip', '--resolution', 32, '--max-images', 12)
    ok('--source', tmp_path / 'a.zip', '--dest', tmp_path / 'b', '--resolution', 16)
    a, b = meta(tmp_path / 'a.zip'), meta(tmp_path / 'b')
    assert a['labels'] == b['labels'] and a['domains'] == b['domains'] and a['factors'] == b['factors']
    assert b['factor_kinds'] == a['factor_kinds']
    assert read(tmp_path / 'b').resolution == 16
    ok('--source', tmp_path / 'b', '--dest', tmp_path / 'c.zip')                   # our folder output is a source too
    assert meta(tmp_path / 'c.zip')['labels'] == a['labels']

def test_pass_through_of_a_foreign_nvidia_zip(tmp_path):
    path = tmp_path / 'nv.zip'
    with zipfile.ZipFile(path, 'w') as z:                                      # as NVIDIA's tool writes it
        labels = []
        for i in range(4):
            name = f'00000/img{i:08d}.png'
            buf = __import__('io').BytesIO()
            PIL.Image.fromarray(rand_img(i)).save(buf, format='png')
            z.writestr(name, buf.getvalue())
            labels.append([name, i % 3])
        z.writestr('dataset.json', json.dumps({'labels': labels}))
    ok('--source', path, '--dest', tmp_path / 'out.zip')
    ds = read(tmp_path / 'out.zip')
    assert ds.domain_names is None and ds.num_domains == 3 and ds.label_dim == 3
    assert np.array_equal(ds[1][0], rand_img(1).transpose(2, 0, 1))

#----------------------------------------------------------------------------
# Every other user error: one sentence, non-zero exit, no traceback, nothing written.

def test_image_errors(tmp_path):
    dest = str(tmp_path / 'out.zip')
    save(f'{tmp_path}/corrupt/a/ok.png', rand_img(0))
    open(f'{tmp_path}/corrupt/a/broken.png', 'wb').write(b'\x89PNG not really')
    fails('Cannot read image "a/broken.png"', '--source', tmp_path / 'corrupt', '--dest', dest, dest=dest)
    # A valid header with truncated data is only found while writing: the output must still not appear.
    save(f'{tmp_path}/trunc/a/0.png', rand_img(0))
    buf = __import__('io').BytesIO(); PIL.Image.fromarray(rand_img(1, size=64)).save(buf, format='png')
    open(f'{tmp_path}/trunc/a/1.png', 'wb').write(buf.getvalue()[:300])
    fails('Cannot read image "a/1.png"', '--source', tmp_path / 'trunc', '--dest', dest, '--resolution', 16, dest=dest)
    save(f'{tmp_path}/mixed/a/0.png', rand_img(0, size=16))
    save(f'{tmp_path}/mixed/b/1.png', rand_img(1, size=32))
    fails('mixed sizes', '--source', tmp_path / 'mixed', '--dest', dest, dest=dest)
    save(f'{tmp_path}/wide/a/0.png', np.zeros((16, 24, 3), np.uint8))
    fails('is 24x16, not square; pass --transform=center-crop', '--source', tmp_path / 'wide', '--dest', dest, dest=dest)
    save(f'{tmp_path}/odd/a/0.png', rand_img(0, size=24))
    fails('must be a power of two; pass --resolution=16 or 32', '--source', tmp_path / 'odd', '--dest', dest, dest=dest)
    fails('Resolution 100 is not a power of two', '--source', tmp_path / 'odd', '--dest', dest, '--resolution', 100, dest=dest)
    save(f'{tmp_path}/empty/a/0.png', rand_img(0))
    os.makedirs(f'{tmp_path}/empty/b/sub'); open(f'{tmp_path}/empty/b/sub/readme.txt', 'w').write('x')
    fails('empty/b" contains no images', '--source', tmp_path / 'empty', '--dest', dest, dest=dest)
    save(f'{tmp_path}/both/a/0.png', rand_img(0)); save(f'{tmp_path}/both/top.png', rand_img(1))
    fails('next to domain sub-folders', '--source', tmp_path / 'both', '--dest', dest, dest=dest)

def test_option_errors(tmp_path):
    dest = str(tmp_path / 'out.zip')
    fails('does not exist', '--source', tmp_path / 'nope', '--dest', dest, dest=dest)
    fails('--domains selects CelebA attributes', '--source', 'builtin:shapes', '--dest', dest, '--domains', 'Male', dest=dest)
    fails('available: builtin:patches, builtin:patches-global, builtin:shapes', '--source', 'builtin:cubes', '--dest', dest, dest=dest)
    fails('power-of-two resolution >= 16', '--source', 'builtin:shapes', '--dest', dest, '--resolution', 8, dest=dest)
    fails('must be square', '--source', 'builtin:shapes', '--dest', dest, '--width', 32, '--height', 16, dest=dest)
    fails('--max-images=0 must be at least 1', '--source', 'builtin:shapes', '--dest', dest, '--max-images', 0, dest=dest)
    (tmp_path / 'file.txt').write_text('x')
    fails('neither a folder nor a .zip', '--source', tmp_path / 'file.txt', '--dest', dest, dest=dest)
    (tmp_path / 'bad.zip').write_bytes(b'not a zip')
    fails('Cannot read zip file', '--source', tmp_path / 'bad.zip', '--dest', dest, dest=dest)

#----------------------------------------------------------------------------

def test_help_text_is_documented():
    out = ok('--help')
    doc = open(os.path.join(os.path.dirname(__file__), '..', 'docs', 'dataset_tool-help.txt')).read()
    assert doc.strip() == out.strip(), 'regenerate docs/dataset_tool-help.txt with: python dataset_tool.py --help'

#----------------------------------------------------------------------------
