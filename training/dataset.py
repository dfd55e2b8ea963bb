"""Training data: NVIDIA-format data sets (folder or zip of images + dataset.json) and the infinite sampler.

Drop-in compatible with NVIDIA's `training.dataset.ImageFolderDataset` (same constructor, attributes and
item format: uint8 CHW image, float32 one-hot label), plus what multi-domain training needs: domain
names, the label distribution, and the ground-truth factors our dataset_tool stores.
"""
import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import torch

import dnnlib
from datasets.errors import DatasetError

MAX_DOMAINS = 1024  # as torch_utils/allowlist.py bounds c_dim
from datasets.images import MAX_IMAGE_BYTES, is_image_name, open_image, read_member

#----------------------------------------------------------------------------

class Dataset(torch.utils.data.Dataset):
    """Abstract base: index bookkeeping (max_size subset, x-flip doubling) and labels, as in NVIDIA's code."""

    def __init__(self, name, raw_shape, max_size=None, use_labels=False, xflip=False, random_seed=0):
        self._name = name
        self._raw_shape = list(raw_shape)
        self._use_labels = use_labels
        self._raw_labels = None
        self._label_shape = None
        self._raw_idx = np.arange(self._raw_shape[0], dtype=np.int64)
        if max_size is not None and self._raw_idx.size > max_size:    # a seeded subset, kept in file order
            np.random.RandomState(random_seed % (1 << 31)).shuffle(self._raw_idx)
            self._raw_idx = np.sort(self._raw_idx[:max_size])
        self._xflip = np.zeros(self._raw_idx.size, dtype=np.uint8)
        if xflip:                                                      # every image twice: as is and mirrored
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    def _get_raw_labels(self):
        if self._raw_labels is None:
            self._raw_labels = self._load_raw_labels() if self._use_labels else None
            if self._raw_labels is None:
                self._raw_labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            assert isinstance(self._raw_labels, np.ndarray) and self._raw_labels.shape[0] == self._raw_shape[0]
            assert self._raw_labels.dtype in (np.float32, np.int64)
            if self._raw_labels.dtype == np.int64:
                assert self._raw_labels.ndim == 1 and np.all(self._raw_labels >= 0)
        return self._raw_labels

    def close(self):
        pass

    def _load_raw_image(self, raw_idx): # to be overridden
        raise NotImplementedError

    def _load_raw_labels(self): # to be overridden
        raise NotImplementedError

    def __getstate__(self):
        return dict(self.__dict__)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __len__(self):
        return self._raw_idx.size

    def __getitem__(self, idx):
        image = self._load_raw_image(self._raw_idx[idx])
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and list(image.shape) == self.image_shape
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return image.copy(), self.get_label(idx)

    def get_label(self, idx):
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            label = onehot
        return label.copy()

    def get_details(self, idx):
        d = dnnlib.EasyDict()
        d.raw_idx = int(self._raw_idx[idx])
        d.xflip = (int(self._xflip[idx]) != 0)
        d.raw_label = self._get_raw_labels()[d.raw_idx].copy()
        return d

    @property
    def name(self):
        return self._name

    @property
    def image_shape(self):
        return list(self._raw_shape[1:])

    @property
    def num_channels(self):
        assert len(self.image_shape) == 3 # CHW
        return self.image_shape[0]

    @property
    def resolution(self):
        assert len(self.image_shape) == 3 and self.image_shape[1] == self.image_shape[2]
        return self.image_shape[1]

    @property
    def label_shape(self):
        if self._label_shape is None:
            raw_labels = self._get_raw_labels()
            if raw_labels.dtype == np.int64:
                self._label_shape = [max(int(raw_labels.max()) + 1, self.num_domains)]
            else:
                self._label_shape = list(raw_labels.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self):
        assert len(self.label_shape) == 1
        return self.label_shape[0]

    @property
    def has_labels(self):
        return any(x != 0 for x in self.label_shape)

    @property
    def has_onehot_labels(self):
        return self._get_raw_labels().dtype == np.int64

    @property
    def num_domains(self):
        return 0

#----------------------------------------------------------------------------

class ImageFolderDataset(Dataset):
    """A folder or zip of images with an optional dataset.json (NVIDIA format, plus our extra keys).

    dataset.json keys read: "labels" [[relpath, int or list], ...] | null; "domains" [name, ...] (label ->
    name); "factors" {"names": [...], "values": [[relpath, [v, ...]], ...]}; "factor_kinds" {"content":
    [...], "style": [...]}. The zip handle is opened lazily and reopened in each worker process.
    """

    def __init__(self, path, resolution=None, use_labels=False, max_size=None, xflip=False, random_seed=0, **super_kwargs):
        self._path = os.path.expanduser(str(path))
        self._zipfile = None
        self._zipfile_pid = None
        if os.path.isdir(self._path):
            self._type = 'dir'
            self._all_fnames = sorted(os.path.relpath(os.path.join(root, f), start=self._path).replace(os.sep, '/')
                                      for root, _dirs, files in os.walk(self._path) for f in files)
        elif os.path.isfile(self._path) and os.path.splitext(self._path)[1].lower() == '.zip':
            self._type = 'zip'
            self._all_fnames = sorted(self._get_zipfile().namelist())
        elif not os.path.exists(self._path):
            raise DatasetError(f'Dataset "{self._path}" does not exist; build one with dataset_tool.py or fix the path.')
        else:
            raise DatasetError(f'Dataset "{self._path}" is neither a folder nor a .zip file; build one with dataset_tool.py.')
        self._image_fnames = [f for f in self._all_fnames if is_image_name(f) and '/.' not in '/' + f]
        if not self._image_fnames:
            raise DatasetError(f'Dataset "{self._path}" contains no image files; build it with dataset_tool.py.')
        self._meta = self._load_meta()
        name = os.path.splitext(os.path.basename(self._path.rstrip('/')))[0]
        raw_shape = [len(self._image_fnames)] + list(self._load_raw_image(0, check=False).shape)
        if resolution is not None and (raw_shape[2] != resolution or raw_shape[3] != resolution):
            raise DatasetError(f'Dataset "{self._path}" holds {raw_shape[3]}x{raw_shape[2]} images, not '
                               f'{resolution}x{resolution}; rebuild it with dataset_tool.py --resolution={resolution}.')
        self._factor_rows = None
        super().__init__(name=name, raw_shape=raw_shape, max_size=max_size, use_labels=use_labels, xflip=xflip,
                         random_seed=random_seed, **super_kwargs)

    @staticmethod
    def _file_ext(fname):
        return os.path.splitext(fname)[1].lower()

    def _get_zipfile(self):
        assert self._type == 'zip'
        if self._zipfile is None or self._zipfile_pid != os.getpid(): # one handle per process (DataLoader workers)
            try:
                self._zipfile = zipfile.ZipFile(self._path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DatasetError(f'Cannot read zip file "{self._path}" ({e}); rebuild it with dataset_tool.py.') from None
            self._zipfile_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname):
        limit = MAX_IMAGE_BYTES * 4 if fname == 'dataset.json' else MAX_IMAGE_BYTES
        if self._type == 'dir':
            path = os.path.join(self._path, fname)
            if os.path.getsize(path) > limit:
                raise DatasetError(f'"{fname}" in "{self._path}" has {os.path.getsize(path)} bytes, more than the limit of {limit}; rebuild the dataset.')
            return open(path, 'rb')
        return io.BytesIO(read_member(self._get_zipfile(), fname, limit))

    def close(self):
        try:
            if self._zipfile is not None:
                self._zipfile.close()
        finally:
            self._zipfile = None

    def __getstate__(self):
        return dict(super().__getstate__(), _zipfile=None, _zipfile_pid=None)

    def _load_meta(self):
        if 'dataset.json' not in self._all_fnames:
            return {}
        try:
            with self._open_file('dataset.json') as f:
                meta = json.load(f)
        except ValueError as e:
            raise DatasetError(f'dataset.json in "{self._path}" is not valid JSON ({e}); rebuild the dataset.') from None
        return meta if isinstance(meta, dict) else {}

    def _load_raw_image(self, raw_idx, check=True):
        fname = self._image_fnames[raw_idx]
        try:
            with self._open_file(fname) as f:
                image = np.array(open_image(io.BytesIO(f.read()), fname))
        except DatasetError:
            raise
        except Exception as e:
            raise DatasetError(f'Cannot read image "{fname}" in "{self._path}" ({e}); rebuild the dataset.') from None
        if image.ndim == 2:
            image = image[:, :, np.newaxis] # HW => HWC
        image = image.transpose(2, 0, 1) # HWC => CHW
        if image.dtype != np.uint8 or image.shape[0] not in (1, 3) or (check and list(image.shape) != self.image_shape):
            raise DatasetError(f'Image "{fname}" in "{self._path}" is {image.dtype} {list(image.shape)} (CHW), '
                               f'not uint8 like the first image; rebuild the dataset with dataset_tool.py.')
        return image

    def _load_raw_labels(self):
        labels = self._meta.get('labels')
        if labels is None:
            return None
        where = f'dataset.json of "{self._path}"'
        if not isinstance(labels, list) or not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in labels):
            raise DatasetError(f'"labels" in {where} is not a list of [file, label] pairs; rebuild the dataset.')
        found = {}
        for fname, label in labels:
            if fname in found and found[fname] != label:
                raise DatasetError(f'Image "{fname[:100]}" has two different labels in {where}; rebuild the dataset.')
            found[fname] = label
        missing = [f for f in self._image_fnames if f not in found]
        if missing:
            raise DatasetError(f'Image "{missing[0]}" has no label in {where}; rebuild the dataset.')
        values = [found[f] for f in self._image_fnames]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):  # domain indices
            bad = next((v for v in values if not 0 <= v < MAX_DOMAINS), None)
            if bad is not None:
                raise DatasetError(f'A label in {where} is {bad}; domain labels are integers in 0..{MAX_DOMAINS - 1}.')
            return np.array(values, dtype=np.int64)
        width = len(values[0]) if isinstance(values[0], list) else None
        if width is None or width > MAX_DOMAINS or not all(isinstance(v, list) and len(v) == width and
                                                            all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v) for v in values):
            raise DatasetError(f'The labels in {where} are neither domain integers nor vectors of one length of finite numbers; '
                               'rebuild the dataset with dataset_tool.py.')
        return np.array(values, dtype=np.float32)

    # Multi-domain extras ------------------------------------------------------

    @property
    def domain_names(self):
        """Names of the domains in label order, or None when the file does not store them."""
        names = self._meta.get('domains')
        if names is not None and not (isinstance(names, list) and len(names) <= MAX_DOMAINS and all(isinstance(n, str) for n in names)):
            raise DatasetError(f'"domains" in dataset.json of "{self._path}" is not a list of at most {MAX_DOMAINS} names; rebuild the dataset.')
        return list(names) if names is not None else None

    @property
    def num_domains(self):
        """Number of domains: stored names, else max integer label + 1, else 0 (unlabelled)."""
        if self.domain_names is not None:
            return len(self.domain_names)
        labels = self._file_labels()
        return int(labels.max()) + 1 if labels is not None and labels.size else 0

    def _file_labels(self):
        """Integer labels of all files (regardless of use_labels), or None."""
        if not hasattr(self, '_int_labels'):
            labels = self._load_raw_labels()
            self._int_labels = labels if labels is not None and labels.dtype == np.int64 else None
        return self._int_labels

    def label_distribution(self):
        """Probability of each domain among the dataset's items (float64 [num_domains]); None if unlabelled."""
        labels = self._file_labels()
        if labels is None:
            return None
        counts = np.bincount(labels[self._raw_idx], minlength=self.num_domains).astype(np.float64)
        return counts / counts.sum()

    @property
    def factor_names(self):
        """Names of the stored ground-truth factors, or None."""
        factors = self._meta.get('factors')
        return list(factors['names']) if factors else None

    @property
    def factor_kinds(self):
        """{"content": [...], "style": [...]} for built-in sets, else None."""
        return self._meta.get('factor_kinds')

    @property
    def has_factors(self):
        return self.factor_names is not None

    def get_factors(self, idx):
        """Ground-truth factor values of item idx as float32 [len(factor_names)]."""
        if self._factor_rows is None:
            if not self.has_factors:
                raise DatasetError(f'Dataset "{self._path}" stores no factors; build it with dataset_tool.py from a source that has them.')
            values = dict(self._meta['factors']['values'])
            missing = [f for f in self._image_fnames if f not in values]
            if missing:
                raise DatasetError(f'Image "{missing[0]}" has no factors in dataset.json of "{self._path}"; rebuild the dataset.')
            self._factor_rows = np.array([values[f] for f in self._image_fnames], dtype=np.float32)
        return self._factor_rows[self._raw_idx[idx]].copy()

#----------------------------------------------------------------------------

class InfiniteSampler(torch.utils.data.Sampler):
    """Endless stream of dataset indices, disjoint across ranks (rank r takes every num_replicas-th draw).

    NVIDIA's semantics: one seeded permutation, then after each draw the visited slot is swapped with a
    random slot up to `window_size * len(dataset)` behind it, so the order keeps changing without epochs.
    """

    def __init__(self, dataset, rank=0, num_replicas=1, shuffle=True, seed=0, window_size=0.5):
        assert len(dataset) > 0
        assert num_replicas > 0 and 0 <= rank < num_replicas
        assert 0 <= window_size <= 1
        super().__init__()
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size

    def __iter__(self):
        order = np.arange(len(self.dataset))
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))
        idx = 0
        while True:
            i = idx % order.size
            if idx % self.num_replicas == self.rank:
                yield order[i]
            if window >= 2:
                j = (i - rnd.randint(window)) % order.size
                order[i], order[j] = order[j], order[i]
            idx += 1

#----------------------------------------------------------------------------
