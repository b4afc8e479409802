"""Hostile image files given to ``analyze attention --image`` (docs/HOSTILE.md): a refusal
(ValueError -> one line, exit 2), never an uncaught Pillow error (exit 1)."""
import struct
import zlib

import pytest

from mkey_det.analysis.attention import load_image


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(idat)) + chunk(b'IEND', b''))


def test_a_30000_x_30000_header_is_refused_as_bad_input(tmp_path):
    path = tmp_path / 'huge.png'
    path.write_bytes(_png(30000, 30000, b'\x00' * 100))  # 69 bytes on disk, 900 M pixels claimed
    with pytest.raises(ValueError, match=r'huge\.png: not an image that can be read \(too large: .*accepted: at most \d+ pixels\)'):
        load_image(str(path), 224)
