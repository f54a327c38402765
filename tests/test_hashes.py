"""The pHash medmat computes without scipy equals imagehash's, on real images shipped in scikit-image and on
random ones; the pixel SHA-256 covers dtype and shape as well as the bytes."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image
from skimage import data

from medmat.prepare.hashes import phash_hex, pixel_sha256


@pytest.mark.parametrize("name", ["camera", "astronaut", "retina", "coffee", "moon", "chelsea"])
def test_phash_equals_imagehash_on_real_images(name):
    array = getattr(data, name)()
    image = Image.fromarray(array)
    assert phash_hex(image) == str(imagehash.phash(image))


def test_phash_equals_imagehash_on_random_images():
    rng = np.random.default_rng(7)
    for size in (32, 33, 64, 100, 257):
        for _ in range(20):
            image = Image.fromarray(rng.integers(0, 256, (size, size + 3), dtype=np.uint8))
            assert phash_hex(image) == str(imagehash.phash(image))


def test_pixel_sha256_sees_dtype_and_shape():
    a = np.zeros((4, 4), dtype=np.uint8)
    assert pixel_sha256(a) != pixel_sha256(a.reshape(2, 8))
    assert pixel_sha256(a) != pixel_sha256(a.astype(np.uint16)[:, :2])
    assert pixel_sha256(a[:, ::2]) == pixel_sha256(np.ascontiguousarray(a[:, ::2]))
