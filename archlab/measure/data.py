"""Datasets by name, held in memory as uint8 tensors resized to the spec's input and split train/val/test.

`fashion_mnist` (Xiao et al. 2017) is the default: read offline through torchvision.datasets.FashionMNIST from
Debian's dataset-fashion-mnist files (/usr/share/datasets/fashion-mnist) or a cache folder, and downloaded by
torchvision only when no local copy exists. `cifar10` (Krizhevsky 2009) uses torchvision's loader on a local
folder (or downloads), `imagefolder` any class-per-folder tree (an ImageNet subset, say), and `digits`
scikit-learn's bundled 8x8 digits (Alpaydin and Kaynak 1998) for fast tests. Search and ablation select on
a deterministic validation split carved from the training set; the test split is for final reports only.
"""
from __future__ import annotations

import gzip
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from archlab.core.errors import ArchlabError, did_you_mean
from archlab.core.files import atomic_write
from archlab.core.registry import Registry

__all__ = ["DATASETS", "DEBIAN_FASHION_MNIST", "DataSplits", "DatasetInfo", "Split", "adapt_channels",
           "cache_home", "clear_cache", "data_home", "load_data", "resize_images"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte")
_MAX_BYTES = 8 << 30  # in-memory cap on the uint8 splits; ARCHLAB_DATA_MAX_BYTES overrides


def cache_home() -> Path:
    """archlab's cache folder: $ARCHLAB_CACHE, else ~/.cache/archlab."""
    return Path(os.environ.get("ARCHLAB_CACHE") or Path.home() / ".cache" / "archlab")


def data_home() -> Path:
    """Where datasets are unpacked or downloaded: $ARCHLAB_DATA, else <cache_home>/data."""
    return Path(os.environ.get("ARCHLAB_DATA") or cache_home() / "data")


def _downloads_allowed() -> bool:
    return os.environ.get("ARCHLAB_OFFLINE", "") in ("", "0")


@dataclass(frozen=True, eq=False)
class Split:
    """One split in memory: uint8 `images` N x C x H x W (already resized) and int64 `labels` N."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train / validation / test splits of one dataset at one input size, with the train split's pixel stats."""

    train: Split
    val: Split
    test: Split
    num_classes: int
    name: str
    img_size: int
    in_chans: int
    mean: tuple[float, ...]          # per channel, in [0, 1] pixel units, over the train split
    std: tuple[float, ...]
    hflip: bool = True               # False where a mirror changes the label (digits)
    classes: tuple[str, ...] = ()

    def split(self, name: str) -> Split:
        """The split called `name` (train, val or test)."""
        if name not in ("train", "val", "test"):
            raise ArchlabError(f"unknown split {name!r}{did_you_mean(name, ('train', 'val', 'test'))}")
        return getattr(self, name)


@dataclass(frozen=True, eq=False)
class _Source:
    """A decoded dataset before splitting: images in any size/channel count (or lazily on disk), labels."""

    train: _Images
    test: _Images | None             # None: carve a test split from train
    num_classes: int
    classes: tuple[str, ...] = ()


class _Images:
    """Images that can be taken by index, resized and channel-adapted to uint8 N x C x S x S."""

    labels: torch.Tensor

    def take(self, index: torch.Tensor, img_size: int, in_chans: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@dataclass(eq=False)
class _TensorImages(_Images):
    images: torch.Tensor             # uint8 N x C x H x W
    labels: torch.Tensor

    def take(self, index: torch.Tensor, img_size: int, in_chans: int) -> torch.Tensor:
        out = [adapt_channels(resize_images(chunk, img_size), in_chans) for chunk in self.images[index].split(8192)]
        return torch.cat(out) if out else torch.empty(0, in_chans, img_size, img_size, dtype=torch.uint8)


@dataclass(eq=False)
class _FileImages(_Images):
    samples: list[tuple[str, int]]
    labels: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.labels = torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def take(self, index: torch.Tensor, img_size: int, in_chans: int) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms.v2 import functional as F
        out = torch.empty(len(index), in_chans, img_size, img_size, dtype=torch.uint8)
        for i, j in enumerate(index.tolist()):
            path = self.samples[j][0]
            try:
                with Image.open(path) as img:
                    img = img.convert("RGB")
                    # shrink on the PIL image first so a big JPEG never becomes a big tensor
                    img = F.resize(img, img_size, antialias=True)
                    img = F.center_crop(img, [img_size, img_size])
                    out[i] = adapt_channels(F.pil_to_tensor(img)[None], in_chans)[0]
            except OSError as err:
                raise ArchlabError(f"{path}: cannot be read as an image ({err})") from None
        return out


def _check_memory(n: int, img_size: int, in_chans: int, where: str) -> None:
    raw = os.environ.get("ARCHLAB_DATA_MAX_BYTES", str(_MAX_BYTES))
    try:
        limit = int(raw)
    except ValueError:
        raise ArchlabError(f"ARCHLAB_DATA_MAX_BYTES must be a number of bytes, got {raw[:40]!r}") from None
    need = n * in_chans * img_size * img_size
    if need > limit:
        raise ArchlabError(f"{where}: {n:,} images at {in_chans}x{img_size}x{img_size} need "
                           f"{need / 2**30:.1f} GiB in memory, above the {limit / 2**30:.1f} GiB cap; use a "
                           "smaller img_size or limit, or raise ARCHLAB_DATA_MAX_BYTES")


def resize_images(images: torch.Tensor, img_size: int) -> torch.Tensor:
    """Resize uint8 N x C x H x W so the shorter side is `img_size` (antialiased), then centre-crop a square."""
    from torchvision.transforms.v2 import functional as F
    h, w = images.shape[-2:]
    if h == w == img_size:
        return images
    images = F.resize(images, img_size, antialias=True)
    return F.center_crop(images, [img_size, img_size]) if h != w else images


def adapt_channels(images: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Grey -> `in_chans` copies; RGB -> grey by ITU-R 601 luma (PIL's "L") when one channel is wanted."""
    c = images.shape[1]
    if c == in_chans:
        return images
    if c == 1:
        return images.expand(-1, in_chans, -1, -1).contiguous()
    if c == 3 and in_chans == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ArchlabError(f"cannot adapt {c}-channel images to in_chans={in_chans} (only grey -> any and "
                       "RGB -> grey are defined)")


# --- dataset registry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """A dataset by name: its loader (root -> decoded source), native side, channels, whether flips keep labels."""

    name: str
    load: Callable[[str | None], _Source]
    native_size: int | None          # None: images vary (imagefolder)
    native_chans: int
    hflip: bool
    description: str


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _register(name: str, native_size: int | None, native_chans: int, hflip: bool, description: str):
    def add(fn: Callable[[str | None], _Source]) -> Callable[[str | None], _Source]:
        DATASETS.register(name)(DatasetInfo(name, fn, native_size, native_chans, hflip, description))
        return fn
    return add


def _unpack_gz(src: Path, raw: Path) -> None:
    """Decompress the four Fashion-MNIST .gz files into `raw`; atomic writes make concurrent unpacking race-free."""
    raw.mkdir(parents=True, exist_ok=True)
    for name in _FASHION_FILES:
        target = raw / name
        if target.exists():
            continue

        def unpack(tmp: Path, name: str = name) -> None:
            with gzip.open(src / f"{name}.gz", "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)

        atomic_write(target, unpack)


def _fashion_root(root: str | None) -> Path:
    """A torchvision root holding FashionMNIST/raw/<4 files>, made from local .gz files or downloaded."""
    def complete(raw: Path) -> bool:
        return all((raw / n).is_file() for n in _FASHION_FILES)

    def has_gz(folder: Path) -> bool:
        return all((folder / f"{n}.gz").is_file() for n in _FASHION_FILES)

    roots = ([Path(root)] if root else []) + [data_home()]
    for tv_root in roots:
        if complete(tv_root / "FashionMNIST" / "raw"):
            return tv_root
    sources = ([Path(root), Path(root) / "FashionMNIST" / "raw"] if root else []) + [DEBIAN_FASHION_MNIST]
    for src in sources:
        if has_gz(src):
            for tv_root in roots:  # unpack beside the user's root if writable, else into the cache
                try:
                    _unpack_gz(src, tv_root / "FashionMNIST" / "raw")
                    return tv_root
                except OSError:
                    continue
    tv_root = roots[0]
    if not _downloads_allowed():
        raise ArchlabError(f"fashion_mnist: no local copy in {', '.join(str(r) for r in roots)} or "
                           f"{DEBIAN_FASHION_MNIST}, and ARCHLAB_OFFLINE forbids downloading; install the "
                           "Debian package dataset-fashion-mnist or put the four IDX files in "
                           f"{tv_root / 'FashionMNIST' / 'raw'}")
    from torchvision.datasets import FashionMNIST
    try:
        FashionMNIST(str(tv_root), train=True, download=True)
    except Exception as err:
        raise ArchlabError(f"fashion_mnist: no local copy and the download failed ({err}); install the Debian "
                           "package dataset-fashion-mnist or put the four IDX files in "
                           f"{tv_root / 'FashionMNIST' / 'raw'}") from None
    return tv_root


@_register("fashion_mnist", 28, 1, True, "Fashion-MNIST, 60k/10k 28x28 grey, 10 classes (default)")
def _load_fashion_mnist(root: str | None) -> _Source:
    from torchvision.datasets import FashionMNIST
    tv_root = str(_fashion_root(root))
    train = FashionMNIST(tv_root, train=True, download=False)
    test = FashionMNIST(tv_root, train=False, download=False)
    return _Source(_TensorImages(train.data[:, None], train.targets.long()),
                   _TensorImages(test.data[:, None], test.targets.long()), 10, tuple(train.classes))


@_register("cifar10", 32, 3, True, "CIFAR-10, 50k/10k 32x32 RGB, 10 classes (torchvision folder or download)")
def _load_cifar10(root: str | None) -> _Source:
    from torchvision.datasets import CIFAR10
    tv_root = Path(root) if root else data_home()
    sets = []
    for train in (True, False):
        try:
            ds = CIFAR10(str(tv_root), train=train, download=False)
        except RuntimeError:
            if not _downloads_allowed():
                raise ArchlabError(f"cifar10: no local copy under {tv_root} (cifar-10-batches-py) and "
                                   "ARCHLAB_OFFLINE forbids downloading") from None
            try:
                ds = CIFAR10(str(tv_root), train=train, download=True)
            except Exception as err:
                raise ArchlabError(f"cifar10: no local copy under {tv_root} and the download failed ({err})") \
                    from None
        sets.append(_TensorImages(torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                                  torch.tensor(ds.targets, dtype=torch.int64)))
    return _Source(sets[0], sets[1], 10, tuple(ds.classes))


@_register("imagefolder", None, 3, True, "any class-per-folder tree: ROOT/train (+ ROOT/val or ROOT/test) or ROOT")
def _load_imagefolder(root: str | None) -> _Source:
    from torchvision.datasets import ImageFolder
    if not root:
        raise ArchlabError("imagefolder needs a root folder (ROOT/<class>/<image> or ROOT/train/<class>/...)")
    base = Path(root)
    if not base.is_dir():
        raise ArchlabError(f"imagefolder: {base} is not a folder")
    train_dir = base / "train" if (base / "train").is_dir() else base
    test_dir = next((base / d for d in ("val", "test") if train_dir != base and (base / d).is_dir()), None)
    try:
        train = ImageFolder(str(train_dir))
        test = ImageFolder(str(test_dir)) if test_dir else None
    except (FileNotFoundError, RuntimeError) as err:
        raise ArchlabError(f"imagefolder: {err}") from None
    if test is not None and test.classes != train.classes:
        raise ArchlabError(f"imagefolder: {test_dir} has classes {test.classes}, {train_dir} has {train.classes}")
    return _Source(_FileImages(list(train.samples)), _FileImages(list(test.samples)) if test else None,
                   len(train.classes), tuple(train.classes))


@_register("digits", 8, 1, False, "scikit-learn's bundled 8x8 digits, 1797 images, 10 classes (fast tests)")
def _load_digits(root: str | None) -> _Source:
    from sklearn.datasets import load_digits
    digits = load_digits()
    # 0..16 grey levels -> 0..255
    images = torch.from_numpy(digits.images * (255.0 / 16.0)).round().to(torch.uint8)[:, None]
    return _Source(_TensorImages(images, torch.from_numpy(digits.target).long()), None, 10,
                   tuple(str(i) for i in range(10)))


# --- splitting and caching ---------------------------------------------------------------------------

_SOURCES: OrderedDict[tuple[Any, ...], _Source] = OrderedDict()
_SPLITS: OrderedDict[tuple[Any, ...], DataSplits] = OrderedDict()
_CACHE_SIZE = 4
_T = TypeVar("_T")


def _cached(cache: OrderedDict[tuple[Any, ...], _T], key: tuple[Any, ...], make: Callable[[], _T]) -> _T:
    """`cache[key]`, made by `make()` on a miss; the least recently used entries beyond _CACHE_SIZE are dropped."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget every decoded and resized dataset held by this process."""
    _SOURCES.clear()
    _SPLITS.clear()


def _carve(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded permutation of range(n) cut into (rest, held-out) with round(fraction * n) held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held = round(fraction * n)
    return perm[held:], perm[:held]


def _pixel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units, accumulated in float64 over chunks."""
    c = images.shape[1]
    total, sq, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for chunk in images.split(4096):
        x = chunk.to(torch.float64).transpose(0, 1).reshape(c, -1) / 255.0
        total += x.sum(1)
        sq += (x * x).sum(1)
        count += x.shape[1]
    if count == 0:
        return (0.5,) * c, (0.25,) * c
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(max(s, 1e-3) for s in std.tolist())


def load_data(name: str, *, img_size: int, in_chans: int, root: str | None = None, val_fraction: float = 0.1,
              seed: int = 0, limit: int | None = None, val_limit: int | None = None) -> DataSplits:
    """Load dataset `name` as uint8 splits at `img_size` px with `in_chans` channels; cached per process.

    The validation split is a seeded `val_fraction` of the training set (independent of `limit`, which keeps
    only the first `limit` training images of the seeded order; `val_limit` likewise caps validation).
    Where the dataset has no test split (digits, a flat imagefolder) a fixed 20% (seed 0) is held out first.
    """
    info = DATASETS.get(name) if name in DATASETS else None
    if info is None:
        raise ArchlabError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS.names())}")
    if img_size < 1 or in_chans < 1:
        raise ArchlabError(f"img_size and in_chans must be >= 1, got img_size={img_size}, in_chans={in_chans}")
    if not 0.0 <= val_fraction < 1.0:
        raise ArchlabError(f"val_fraction must be in [0, 1), got {val_fraction}")
    for what, value in (("limit", limit), ("val_limit", val_limit)):
        if value is not None and value < 1:
            raise ArchlabError(f"{what} must be >= 1 or None, got {value}")
    root_key = str(Path(root).resolve()) if root else None
    env_key = (str(data_home()), _downloads_allowed())
    key = (name, root_key, env_key, img_size, in_chans, val_fraction, seed, limit, val_limit)

    def make() -> DataSplits:
        source = _cached(_SOURCES, (name, root_key, env_key), lambda: info.load(root))
        train_src, test_src = source.train, source.test
        n = len(train_src.labels)
        if test_src is None:
            pool, test_idx = _carve(n, 0.2, 0)  # fixed: the test split never depends on the search's seed
            test_src = train_src
        else:
            pool, test_idx = torch.arange(n), torch.arange(len(test_src.labels))
        rest, val_pos = _carve(len(pool), val_fraction, seed)
        train_idx, val_idx = pool[rest], pool[val_pos]
        if limit is not None:
            train_idx = train_idx[:limit]
        if val_limit is not None:
            val_idx = val_idx[:val_limit]
        if len(train_idx) == 0:
            raise ArchlabError(f"{name}: the training split is empty")
        # the three splits are held as uint8 in memory: a side too large is refused here, before resizing
        # asks torch for terabytes (an allocation error with a traceback)
        _check_memory(len(train_idx) + len(val_idx) + len(test_idx), img_size, in_chans,
                      f"{name} {root}" if root else name)

        def split(src: _Images, idx: torch.Tensor) -> Split:
            return Split(src.take(idx, img_size, in_chans), src.labels[idx].clone())

        train = split(train_src, train_idx)
        mean, std = _pixel_stats(train.images)
        return DataSplits(train=train, val=split(train_src, val_idx), test=split(test_src, test_idx),
                          num_classes=source.num_classes, name=name, img_size=img_size, in_chans=in_chans,
                          mean=mean, std=std, hflip=info.hflip, classes=source.classes)

    return _cached(_SPLITS, key, make)
