"The image corpus of tests/corpus.py through `load_image`: a correct array or a clear ImageError, for every file."
import io
import numpy as np, pytest
from PIL import Image
from defect_nb.core import load_image, ImageError
from corpus import G, RGB, GOOD, BAD


@pytest.mark.parametrize('name', sorted(GOOD))
def test_good_images_load(name, tmp_path):
    data, shape = GOOD[name]
    a = load_image(data, name=name)
    assert a.dtype == np.uint8 and a.shape == shape
    p = tmp_path / name; p.write_bytes(data)
    np.testing.assert_array_equal(load_image(p), a)                      # path and bytes agree
    with open(p, 'rb') as f: np.testing.assert_array_equal(load_image(f), a)


def test_16bit_scaled_not_truncated():
    a = load_image(GOOD['gray16.tif'][0])
    assert np.abs(a.astype(int) - G).max() <= 1                           # 65535 → 255, not 65535 & 255


def test_exif_rotation_is_applied():
    "Orientation 8 means 'rotate 90° counter-clockwise to view': the pixels come back turned, not only the shape."
    data = GOOD['exif_rotated.jpg'][0]
    stored = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))                 # as stored, before the rotation
    a = load_image(data)
    np.testing.assert_array_equal(a, np.rot90(stored))
    assert not np.array_equal(a, np.rot90(stored, -1))


good_png = GOOD['gray.png'][0]


@pytest.mark.parametrize('name', sorted(BAD))
def test_bad_images_raise_clear_error(name, tmp_path):
    data, words = BAD[name]
    p = tmp_path / name; p.write_bytes(data)
    with pytest.raises(ImageError) as e: load_image(p)
    msg = str(e.value)
    assert name in msg and words in msg, msg
    assert '\n' not in msg and len(msg) < 300


def test_missing_and_folder(tmp_path):
    with pytest.raises(ImageError, match='does not exist'): load_image(tmp_path / 'nope.png')
    with pytest.raises(ImageError, match='is a folder'): load_image(tmp_path)
    with pytest.raises(ImageError, match='pass a path, bytes'): load_image(12)


def test_pixel_limit_from_env(monkeypatch):
    monkeypatch.setenv('DEFECT_NB_MAX_PIXELS', str(60 * 40 - 1))
    with pytest.raises(ImageError, match='over the limit of 2,399'): load_image(good_png)
    monkeypatch.setenv('DEFECT_NB_MAX_PIXELS', str(60 * 40))
    assert load_image(good_png).shape == (40, 60)
