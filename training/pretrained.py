"""NVIDIA's named pretrained networks for `train.py --resume=NAME` (stylegan2-ada-pytorch's names and URLs).

The files are fetched through `dnnlib.util.open_url`: downloaded once into the cache folder, refused with
one sentence when CGGAN_OFFLINE is set or the network is unreachable. NVIDIA publishes no checksums for
these files and we pin none.
"""

#----------------------------------------------------------------------------

_TRANSFER = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/'

PRETRAINED = {
    'ffhq256':      _TRANSFER + 'ffhq-res256-mirror-paper256-noaug.pkl',
    'ffhq512':      _TRANSFER + 'ffhq-res512-mirror-stylegan2-noaug.pkl',
    'ffhq1024':     _TRANSFER + 'ffhq-res1024-mirror-stylegan2-noaug.pkl',
    'celebahq256':  _TRANSFER + 'celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl',
    'lsundog256':   _TRANSFER + 'lsundog-res256-paper256-kimg100000-noaug.pkl',
}

#----------------------------------------------------------------------------

def resolve(resume):
    """--resume value -> what to load: a named network's URL, None for NVIDIA's 'noresume', else unchanged."""
    if resume == 'noresume':
        return None
    return PRETRAINED.get(resume, resume)

#----------------------------------------------------------------------------
