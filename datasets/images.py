"""Image file recognition, decoding with named errors, channel conversion, crops and resizing."""
import os

import numpy as np
import PIL.Image

from .errors import DatasetError

IMAGE_EXTENSIONS = {'.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.pbm', '.pnm'}
GRAY_MODES = {'1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'}
RESIZE_FILTERS = {'box': PIL.Image.BOX, 'lanczos': PIL.Image.LANCZOS}
MAX_IMAGE_BYTES = 256 << 20     # one encoded image file (zip members are checked before they are inflated)
MAX_IMAGE_PIXELS = 8192 * 8192  # one decoded image, checked from its header before decoding

#----------------------------------------------------------------------------

def is_image_name(name: str) -> bool:
    """True for a visible file with a known image extension (any letter case: .JPG counts)."""
    base = os.path.basename(name)
    return not base.startswith('.') and os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS

#----------------------------------------------------------------------------

def open_image(fileobj_or_path, name: str, header_only: bool = False) -> PIL.Image.Image:
    """Open (and unless header_only, fully decode) an image; a bad file becomes a DatasetError naming it."""
    try:
        img = PIL.Image.open(fileobj_or_path)
        if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
            raise ValueError(f'{img.size[0]}x{img.size[1]} pixels, more than the limit of {MAX_IMAGE_PIXELS}')
        if not header_only:
            img.load()
        return img
    except Exception as e: # PIL raises many kinds (OSError, SyntaxError, ValueError, DecompressionBombError)
        raise DatasetError(f'Cannot read image "{name}" ({type(e).__name__}: {e}); remove or replace the file.') from None


def read_member(zf, name: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a zip member, refused (DatasetError) before inflating when it claims more than `limit`."""
    size = zf.getinfo(name).file_size
    if size > limit:
        raise DatasetError(f'"{name}" in "{zf.filename}" unpacks to {size} bytes, more than the limit of {limit}; '
                           'remove it or rebuild the data set.')
    return zf.read(name)

#----------------------------------------------------------------------------

def is_gray_mode(mode: str) -> bool:
    return mode in GRAY_MODES

#----------------------------------------------------------------------------

def to_channels(img: PIL.Image.Image, channels: int) -> PIL.Image.Image:
    """Convert any PIL mode to 8-bit 'L' (channels=1) or 'RGB' (channels=3).

    16-bit images are scaled to 8 bits (v / 257, rounded); images with transparency are composited
    over white.
    """
    if img.mode.startswith('I'):
        a = np.asarray(img).astype(np.float64)
        img = PIL.Image.fromarray(np.round(np.clip(a, 0, 65535) / 257).astype(np.uint8), 'L')
    elif img.mode == 'F':
        img = PIL.Image.fromarray(np.round(np.clip(np.asarray(img), 0, 255)).astype(np.uint8), 'L')
    if img.mode in ('RGBA', 'LA', 'La', 'RGBa', 'PA') or (img.mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        white = PIL.Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        img = PIL.Image.alpha_composite(white, rgba)
    want = 'L' if channels == 1 else 'RGB'
    return img if img.mode == want else img.convert(want)

#----------------------------------------------------------------------------

def center_crop(img: PIL.Image.Image) -> PIL.Image.Image:
    """The largest centred square (NVIDIA's --transform=center-crop)."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))

#----------------------------------------------------------------------------

def center_crop_wide(img: PIL.Image.Image, width: int, height: int, resample) -> PIL.Image.Image:
    """Crop to the aspect width:height, resize to width x height, centre on a black width x width canvas."""
    w, h = img.size
    if w * height >= h * width:             # source wider than the target: crop columns
        cw, ch = int(round(h * width / height)), h
    else:                                   # source taller: crop rows
        cw, ch = w, int(round(w * height / width))
    left, top = (w - cw) // 2, (h - ch) // 2
    img = img.crop((left, top, left + cw, top + ch)).resize((width, height), resample)
    canvas = PIL.Image.new(img.mode, (width, width))
    canvas.paste(img, (0, (width - height) // 2))
    return canvas

#----------------------------------------------------------------------------

def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0

#----------------------------------------------------------------------------
