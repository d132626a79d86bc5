"A corpus of good and bad image files, made here, through `load_image`: a correct array or a clear ImageError."
import io, struct, zlib
import numpy as np, pytest, cv2
from PIL import Image
from defect_nb.core import load_image, ImageError

G = (np.arange(60 * 40) % 251).astype(np.uint8).reshape(40, 60)
RGB = np.dstack([G, 255 - G, G // 2])


def enc(arr, fmt, mode=None, **kw):
    b = io.BytesIO(); im = Image.fromarray(arr)
    if mode: im = im.convert(mode)
    im.save(b, fmt, **kw); return b.getvalue()


def png_bomb(w=40000, h=40000):
    "A valid PNG header declaring w×h pixels, with a tiny IDAT: the classic decompression bomb."
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(b'\0' * 1000)) + chunk(b'IEND', b'')


GOOD = {
    'gray.png': (enc(G, 'PNG'), (40, 60)),
    'rgb.jpg': (enc(RGB, 'JPEG', quality=95), (40, 60, 3)),
    'progressive.jpg': (enc(RGB, 'JPEG', progressive=True), (40, 60, 3)),
    'rgb.bmp': (enc(RGB, 'BMP'), (40, 60, 3)),
    'gray16.tif': (cv2.imencode('.tiff', G.astype(np.uint16) * 257)[1].tobytes(), (40, 60)),
    'gray16.png': (cv2.imencode('.png', G.astype(np.uint16) * 257)[1].tobytes(), (40, 60)),
    'rgb16.tif': (cv2.imencode('.tiff', (RGB.astype(np.uint16) * 257))[1].tobytes(), (40, 60, 3)),
    'float.tif': (enc(G.astype(np.float32) / 255, 'TIFF'), (40, 60)),
    'cmyk.jpg': (enc(RGB, 'JPEG', mode='CMYK'), (40, 60, 3)),
    'rgba.png': (enc(np.dstack([RGB, np.full_like(G, 128)]), 'PNG'), (40, 60, 3)),
    'palette_transparent.png': (None, (40, 60, 3)),
    'la.png': (enc(np.dstack([G, np.full_like(G, 255)]), 'PNG'), (40, 60)),
    'one_pixel.png': (enc(np.zeros((1, 1), np.uint8), 'PNG'), (1, 1)),
    'wide.png': (enc(np.zeros((20, 10000), np.uint8), 'PNG'), (20, 10000)),
}
b = io.BytesIO(); Image.fromarray(G).convert('P').save(b, 'PNG', transparency=0)
GOOD['palette_transparent.png'] = (b.getvalue(), (40, 60, 3))


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


def test_exif_rotation():
    ex = Image.fromarray(RGB).getexif(); ex[0x0112] = 8                   # rotate 90° counter-clockwise to view
    b = io.BytesIO(); Image.fromarray(RGB).save(b, 'JPEG', exif=ex)
    assert load_image(b.getvalue()).shape == (60, 40, 3)


good_png = enc(G, 'PNG'); good_jpg = enc(RGB, 'JPEG')
BAD = {
    'zero.png': (b'', 'is empty'),
    'text.png': (b'this is a text file, not a picture\n' * 3, 'is not an image'),
    'random.jpg': (np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes(), 'is not an image'),
    'truncated.png': (good_png[:len(good_png) // 2], 'truncated'),
    'truncated_header.png': (good_png[:20], 'truncated'),
    'truncated.jpg': (good_jpg[:len(good_jpg) // 2], 'truncated'),
    'bomb.png': (png_bomb(), '1,600,000,000 pixels, over the limit'),
    'animated.gif': (None, 'GIF'),
}
b = io.BytesIO(); Image.fromarray(RGB).save(b, 'GIF', save_all=True, append_images=[Image.fromarray(255 - RGB)])
BAD['animated.gif'] = (b.getvalue(), 'is a GIF file')


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
