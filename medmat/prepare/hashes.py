"""The two hashes of every sample: SHA-256 of the decoded pixels (exact duplicates) and a 64-bit pHash
(near duplicates).

The pHash is imagehash's (greyscale, 32x32 Lanczos resize, 2D DCT-II, the 8x8 low frequencies against their
median), computed with two small matrix products instead of scipy's FFT so that building imports no scipy; the
bits equal `imagehash.phash` (a test checks it on real and random images)."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

HASH_SIZE = 8
IMAGE_SIZE = HASH_SIZE * 4
# Rows k < 8 of the unnormalised DCT-II matrix (scipy.fftpack.dct's type 2): 2 cos(pi k (2n + 1) / 2N).
_DCT = 2 * np.cos(np.pi * np.arange(HASH_SIZE)[:, None] * (2 * np.arange(IMAGE_SIZE)[None, :] + 1)
                  / (2 * IMAGE_SIZE))


def pixel_sha256(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def phash_hex(image: Image.Image) -> str:
    """imagehash.phash(image) as its hex string, without scipy."""
    grey = image if image.mode == "L" else image.convert("L")
    pixels = np.asarray(grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T).ravel()  # the DCT along axis 0, then axis 1, keeping the 8x8 low frequencies
    middle = np.sort(low)[len(low) // 2 - 1:len(low) // 2 + 1]
    median = (middle[0] + middle[1]) / 2  # np.median's value for an even count, without its overhead
    return np.packbits(low > median).tobytes().hex()  # row-major bits, first bit highest


def perceptual_hash(pixels: np.ndarray) -> str:
    """pHash of a decoded 2D image, after a cheap box reduction of large ones (pHash only looks at 32x32)."""
    image = Image.fromarray(pixels if pixels.dtype == np.uint8 else (pixels >> 8).astype(np.uint8))
    factor = min(image.size) // 64
    if factor > 1:
        image = image.reduce(factor)
    return phash_hex(image)
