"""Open a local path or a URL; downloads are cached, offline use fails fast with one sentence.

Re-exported as `dnnlib.util.open_url` (NVIDIA-compatible name and arguments).
Environment: CGGAN_CACHE_DIR moves the cache folder, CGGAN_OFFLINE=1 forbids downloads.
"""
import hashlib
import io
import os
import re
import tempfile
import urllib.parse

from . import files

#----------------------------------------------------------------------------

class DownloadError(OSError):
    """A URL could not be fetched; the message is one sentence saying what to do."""

#----------------------------------------------------------------------------

def is_url(obj, allow_file_urls: bool = False) -> bool:
    """True for strings of the form scheme://netloc/..., i.e. http(s) (and file:// if allowed)."""
    if not isinstance(obj, str) or '://' not in obj:
        return False
    if allow_file_urls and obj.startswith('file://'):
        return True
    parsed = urllib.parse.urlparse(obj)
    return bool(parsed.scheme) and bool(parsed.netloc) and parsed.scheme in ('http', 'https')


def is_offline() -> bool:
    return os.environ.get('CGGAN_OFFLINE', '').strip().lower() not in ('', '0', 'false', 'no')


def cache_path_for(url: str, cache_dir: str = None) -> str:
    """Where `url` is cached: <cache_dir>/<md5 of url>_<sanitised file name>."""
    if cache_dir is None:
        cache_dir = files.make_cache_dir_path('downloads')
    url_md5 = hashlib.md5(url.encode('utf-8')).hexdigest()
    name = os.path.basename(urllib.parse.urlparse(url).path) or 'download'
    name = re.sub(r'[^0-9a-zA-Z_.-]', '_', name)[:100]
    return os.path.join(cache_dir, f'{url_md5}_{name}')


def file_url_to_path(url: str) -> str:
    """file:///a/b -> /a/b (and file://C:/x -> C:/x on Windows)."""
    parsed = urllib.parse.urlparse(url)
    path = urllib.parse.unquote(parsed.path)
    if parsed.netloc and parsed.netloc != 'localhost':
        path = parsed.netloc + path
    if os.name == 'nt' and re.match(r'^/[A-Za-z]:', path):
        path = path[1:]
    return path

#----------------------------------------------------------------------------

def _download(url: str, dest: str, num_attempts: int, verbose: bool, timeout: float):
    """Fetch `url` into `dest` atomically (temp file in the same folder + os.replace)."""
    import requests  # imported lazily: local use of open_url needs no network stack
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    last_error = None
    for attempt in range(max(num_attempts, 1)):
        try:
            with requests.get(url, stream=True, timeout=(timeout, 60)) as res:
                res.raise_for_status()
                if 'text/html' in res.headers.get('Content-Type', '') and 'drive.google.com' in url:
                    raise DownloadError(f'Cannot download {url}: the server returned an HTML page (quota or login); download it in a browser and pass the local path.')
                total = int(res.headers.get('Content-Length', 0)) or None
                with files.atomic_write(dest, durable=True) as f:
                    bar = _progress(total, os.path.basename(dest), verbose)
                    for chunk in res.iter_content(chunk_size=1 << 20):
                        f.write(chunk)
                        bar.update(len(chunk))
                    bar.close()
                return
        except DownloadError:
            raise
        except (requests.ConnectionError, requests.Timeout) as e:
            last_error = e
            if attempt == 0 and _looks_offline(e):
                break  # no point retrying without a network
        except requests.HTTPError as e:
            status = e.response.status_code if e.response is not None else '?'
            raise DownloadError(f'Cannot download {url}: the server answered HTTP {status}; check the URL.') from None
        except OSError as e:
            last_error = e
    raise DownloadError(f'Cannot download {url}: no network connection ({type(last_error).__name__}). '
                        f'Download it elsewhere and pass the local path, or put it at {dest}.') from None


def _looks_offline(e: Exception) -> bool:
    text = str(e).lower()
    return any(s in text for s in ('name or service not known', 'temporary failure in name resolution',
                                   'nodename nor servname', 'network is unreachable', 'getaddrinfo failed',
                                   'no route to host', 'connection refused'))


def _progress(total, desc, verbose):
    if verbose:
        try:
            import tqdm
            return tqdm.tqdm(total=total, unit='B', unit_scale=True, desc=f'Downloading {desc}', leave=False)
        except ImportError:
            pass
    class _Null:
        def update(self, n): pass
        def close(self): pass
    return _Null()

#----------------------------------------------------------------------------

def open_url(url: str, cache_dir: str = None, num_attempts: int = 3, verbose: bool = True,
             return_filename: bool = False, cache: bool = True, timeout: float = 10.0):
    """Open a local path, file:// URL or http(s) URL for binary reading.

    http(s) files are downloaded once into the cache (keyed by the URL's hash) and opened from there.
    With return_filename=True the local file path is returned instead of an open file.
    With cache=False the download is read into memory and returned as a BytesIO.
    """
    if not isinstance(url, (str, os.PathLike)):
        raise TypeError(f'open_url expects a path or URL string, got {type(url).__name__}')
    url = os.fspath(url)

    # Local files.
    if not is_url(url, allow_file_urls=True):
        if '://' in url:
            raise DownloadError(f'Cannot open {url}: only local paths, file:// and http(s):// URLs are supported.')
        if not os.path.isfile(url):
            raise FileNotFoundError(f'File not found: {url}; check the path.')
        return url if return_filename else open(url, 'rb')
    if url.startswith('file://'):
        path = file_url_to_path(url)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'File not found: {path} (from {url}); check the path.')
        return path if return_filename else open(path, 'rb')

    # Remote files: cache hit?
    dest = cache_path_for(url, cache_dir)
    if cache and os.path.isfile(dest):
        return dest if return_filename else open(dest, 'rb')
    if is_offline():
        raise DownloadError(f'Cannot download {url}: CGGAN_OFFLINE is set. '
                            f'Download it elsewhere and pass the local path, or put it at {dest}.')
    if cache or return_filename:
        _download(url, dest, num_attempts, verbose, timeout)
        return dest if return_filename else open(dest, 'rb')
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = os.path.join(tmp_dir, 'download')
        _download(url, tmp, num_attempts, verbose, timeout)
        with open(tmp, 'rb') as f:
            return io.BytesIO(f.read())

#----------------------------------------------------------------------------
