"""Hostile inputs (docs/HOSTILE.md): image files given to ``analyze attention --image`` are a refusal
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


@pytest.mark.parametrize('raw, expected', [('', 120), ('abc', 120), ('0', 120), ('-1', 120), ('1e9', 120),
                                           ('1000000000000000', 120), ('604800', 604800), ('30', 30)])
def test_collective_timeout_of_odd_environment_values(monkeypatch, raw, expected):
    # a 10**15 s timeout overflowed datetime.timedelta in every worker (OverflowError traceback)
    import datetime

    from mkey_det.cli.cpu_worker import collective_timeout_s
    monkeypatch.setenv('MKEY_DIST_TIMEOUT_S', raw)
    assert collective_timeout_s() == expected
    datetime.timedelta(seconds=collective_timeout_s())


@pytest.mark.parametrize('window_size', [0, -3, 'abc', [8, 8, 8], [8, 8, 8, 0], True])
def test_swinv2_window_size_out_of_range_is_a_value_error(window_size):
    # --cfg-options model.backbone.window_size=0 ended in 'error: AssertionError: ' (exit 1) from the stock model
    from mmpretrain.registry import MODELS

    from mkey_det.models.backbones.swinv2_mkey import SwinTransformerV2MKey
    assert MODELS.module_dict['SwinTransformerV2MKey'] is SwinTransformerV2MKey  # still the registered class
    with pytest.raises(ValueError, match=r'^window_size .*: accepted: a whole number >= 1, or 4 of them \(one per stage\)'):
        SwinTransformerV2MKey(arch='tiny', img_size=64, window_size=window_size, key_type='spatialk', num_charts=2)
