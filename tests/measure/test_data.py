"""archlab.measure.data: offline loading, splits, resizing, channel adaptation, the four dataset loaders."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from archlab.core.errors import ArchlabError
from archlab.measure import data as data_mod
from archlab.measure.data import DATASETS, DEBIAN_FASHION_MNIST, adapt_channels, clear_cache, load_data, resize_images

needs_fashion = pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                   reason=f"{DEBIAN_FASHION_MNIST} absent (install the Debian package "
                                          "dataset-fashion-mnist, as .ci/setup does)")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets an empty data home, no downloads and an empty in-process cache."""
    monkeypatch.setenv("ARCHLAB_DATA", str(tmp_path / "home"))
    monkeypatch.setenv("ARCHLAB_OFFLINE", "1")
    clear_cache()
    yield
    clear_cache()


def test_registry_names_and_did_you_mean():
    assert DATASETS.names() == ["fashion_mnist", "cifar10", "imagefolder", "digits"]
    with pytest.raises(ArchlabError, match="did you mean 'fashion_mnist'"):
        load_data("fashion-mnist", img_size=28, in_chans=1)


@needs_fashion
def test_fashion_mnist_offline_from_debian_files(tmp_path):
    d = load_data("fashion_mnist", img_size=32, in_chans=3, limit=500, val_limit=200)
    assert d.name == "fashion_mnist" and d.num_classes == 10 and d.classes[0] == "T-shirt/top"
    assert d.train.images.shape == (500, 3, 32, 32) and d.train.images.dtype == torch.uint8
    assert d.train.labels.dtype == torch.int64 and set(d.train.labels.tolist()) <= set(range(10))
    assert len(d.val) == 200 and len(d.test) == 10_000
    # grey copied to 3 channels
    assert torch.equal(d.train.images[:, 0], d.train.images[:, 2])
    # the torchvision loader's layout was made in the data home from the packaged .gz files
    raw = tmp_path / "home" / "FashionMNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 60_000 * 784 + 16
    # a second load in the process is the cached object
    assert load_data("fashion_mnist", img_size=32, in_chans=3, limit=500, val_limit=200) is d


@needs_fashion
def test_fashion_mnist_matches_torchvision(tmp_path):
    from torchvision.datasets import FashionMNIST
    d = load_data("fashion_mnist", img_size=28, in_chans=1, val_fraction=0.0)
    ref = FashionMNIST(str(tmp_path / "home"), train=False, download=False)
    assert torch.equal(d.test.images[:, 0], ref.data) and torch.equal(d.test.labels, ref.targets)
    assert len(d.train) == 60_000 and len(d.val) == 0


@needs_fashion
def test_fashion_mnist_root_with_gz_files(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    for f in DEBIAN_FASHION_MNIST.glob("*.gz"):
        (root / f.name).symlink_to(f)
    d = load_data("fashion_mnist", img_size=28, in_chans=1, root=str(root), limit=100, val_limit=10)
    assert (root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert len(d.train) == 100


def test_fashion_mnist_missing_offline_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(ArchlabError, match="dataset-fashion-mnist"):
        load_data("fashion_mnist", img_size=28, in_chans=1)


def test_digits_splits_are_deterministic_and_limit_keeps_val():
    a = load_data("digits", img_size=16, in_chans=1, seed=0)
    b = load_data("digits", img_size=16, in_chans=1, seed=0, limit=100)
    c = load_data("digits", img_size=16, in_chans=1, seed=1)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert len(a.test) == round(0.2 * 1797) and len(a.val) == round(0.1 * (1797 - len(a.test)))
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.test.images, b.test.images)
    assert torch.equal(b.train.images, a.train.images[:100])
    assert not torch.equal(a.val.labels, c.val.labels)
    assert torch.equal(a.test.labels, c.test.labels)  # the test split never moves with the seed
    assert a.train.images.shape[1:] == (1, 16, 16) and a.hflip is False
    assert 0.0 < a.mean[0] < 1.0 and 0.0 < a.std[0] < 1.0


def test_digits_no_overlap_between_splits():
    d = load_data("digits", img_size=8, in_chans=1)
    rows = {tuple(x.flatten().tolist()) for x in d.test.images}
    # the digits set has a few exact duplicate images; a leak would share hundreds
    assert sum(tuple(x.flatten().tolist()) in rows for x in d.train.images) < 5


def test_resize_and_channels():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.uint8).view(2, 1, 8, 8)
    assert resize_images(x, 16).shape == (2, 1, 16, 16) and resize_images(x, 8) is x
    rect = torch.zeros(1, 3, 10, 20, dtype=torch.uint8)
    assert resize_images(rect, 5).shape == (1, 3, 5, 5)
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    assert adapt_channels(rgb, 1).item() == round(0.299 * 255)
    assert adapt_channels(x, 3).shape == (2, 3, 8, 8)
    with pytest.raises(ArchlabError, match="cannot adapt 3-channel"):
        adapt_channels(rgb, 2)


def test_bad_arguments():
    with pytest.raises(ArchlabError, match="val_fraction"):
        load_data("digits", img_size=8, in_chans=1, val_fraction=1.0)
    with pytest.raises(ArchlabError, match="limit"):
        load_data("digits", img_size=8, in_chans=1, limit=0)


def _write_cifar(root: Path, n: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


def test_cifar10_from_local_folder(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar
    _write_cifar(tmp_path / "cifar", 6)
    # our tiny files cannot match the official md5 sums that torchvision checks
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    d = load_data("cifar10", img_size=16, in_chans=3, root=str(tmp_path / "cifar"), val_fraction=0.2)
    assert len(d.train) + len(d.val) == 30 and len(d.test) == 6
    assert d.train.images.shape[1:] == (3, 16, 16) and d.classes[3] == "c3"
    grey = load_data("cifar10", img_size=32, in_chans=1, root=str(tmp_path / "cifar"))
    assert grey.train.images.shape[1:] == (1, 32, 32)


def test_cifar10_missing_offline(tmp_path):
    with pytest.raises(ArchlabError, match="cifar10: no local copy"):
        load_data("cifar10", img_size=32, in_chans=3, root=str(tmp_path / "empty"))


def _write_pngs(folder: Path, classes: tuple[str, ...], per_class: int, size: tuple[int, int]) -> None:
    from PIL import Image
    for k, cls in enumerate(classes):
        (folder / cls).mkdir(parents=True)
        for i in range(per_class):
            colour = (40 * k, 255 - 40 * k, 7 * i)
            Image.new("RGB", size, colour).save(folder / cls / f"{i}.png")


def test_imagefolder_train_val_tree(tmp_path):
    _write_pngs(tmp_path / "train", ("ant", "bee", "cat"), 4, (20, 12))
    _write_pngs(tmp_path / "val", ("ant", "bee", "cat"), 2, (9, 9))
    d = load_data("imagefolder", img_size=8, in_chans=3, root=str(tmp_path), val_fraction=0.25)
    assert d.classes == ("ant", "bee", "cat") and d.num_classes == 3
    assert len(d.train) == 9 and len(d.val) == 3 and len(d.test) == 6
    assert d.train.images.shape[1:] == (3, 8, 8)
    # a flat colour survives resizing: the label says which colour the image has
    for img, label in zip(d.test.images, d.test.labels):
        assert img[0, 4, 4].item() == 40 * label.item()


def test_a_side_too_large_for_memory_is_refused_before_resizing(monkeypatch):
    # digits' 1,797 images at 8192 px would be 120 GB: said in one message, not torch's allocation traceback
    with pytest.raises(ArchlabError, match=r"^digits: 1,797 images at 1x8192x8192 need 112.3 GiB in memory, "
                                           r"above the 8.0 GiB cap; use a smaller img_size or limit"):
        load_data("digits", img_size=8192, in_chans=1)
    monkeypatch.setenv("ARCHLAB_DATA_MAX_BYTES", "lots")
    with pytest.raises(ArchlabError, match="ARCHLAB_DATA_MAX_BYTES must be a number of bytes, got 'lots'"):
        load_data("digits", img_size=9, in_chans=1)


def test_imagefolder_flat_tree_carves_test_and_caps_memory(tmp_path, monkeypatch):
    _write_pngs(tmp_path / "flat", ("a", "b"), 5, (10, 10))
    d = load_data("imagefolder", img_size=6, in_chans=1, root=str(tmp_path / "flat"))
    assert len(d.test) == 2 and len(d.train) + len(d.val) == 8 and d.train.images.shape[1] == 1
    monkeypatch.setenv("ARCHLAB_DATA_MAX_BYTES", "100")
    with pytest.raises(ArchlabError, match=f"^imagefolder {tmp_path / 'flat'}: 10 images at 3x64x64 need .* "
                                           "above the .* cap"):
        load_data("imagefolder", img_size=64, in_chans=3, root=str(tmp_path / "flat"))
    with pytest.raises(ArchlabError, match="needs a root"):
        load_data("imagefolder", img_size=8, in_chans=3)
