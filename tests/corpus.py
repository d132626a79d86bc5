"""The image corpus of the tests and of bench/load_test.py, made here in memory: files `load_image` must read
(`GOOD`: name → (bytes, shape)) and hostile ones it must refuse with a clear `ImageError` (`BAD`: name → (bytes, words
the message holds)). A plain module, not a conftest, so that the load benchmark can import it too."""
import io, struct, zlib
import numpy as np, cv2
from PIL import Image

G = (np.arange(60 * 40) % 251).astype(np.uint8).reshape(40, 60)
RGB = np.dstack([G, 255 - G, G // 2])


def enc(arr, fmt, mode=None, **kw):
    "Bytes of `arr` saved by Pillow as `fmt` (after converting to `mode`)."
    b = io.BytesIO(); im = Image.fromarray(arr)
    if mode: im = im.convert(mode)
    im.save(b, fmt, **kw); return b.getvalue()


def png_chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))


def png_bomb(w=40000, h=40000):
    "A valid PNG header declaring w×h pixels, with a tiny IDAT: the classic decompression bomb."
    return (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
            + png_chunk(b'IDAT', zlib.compress(b'\0' * 1000)) + png_chunk(b'IEND', b''))


def _exif_rotated():
    ex = Image.fromarray(RGB).getexif(); ex[0x0112] = 8                   # rotate 90° counter-clockwise to view
    b = io.BytesIO(); Image.fromarray(RGB).save(b, 'JPEG', exif=ex); return b.getvalue()


def _palette_transparent():
    b = io.BytesIO(); Image.fromarray(G).convert('P').save(b, 'PNG', transparency=0); return b.getvalue()


def _animated_gif():
    b = io.BytesIO(); Image.fromarray(RGB).save(b, 'GIF', save_all=True, append_images=[Image.fromarray(255 - RGB)]); return b.getvalue()


def _float_with_nan():
    f = G.astype(np.float32) / 255; f[3, 4] = np.nan; return enc(f, 'TIFF')


GOOD = {
    'gray.png': (enc(G, 'PNG'), (40, 60)),
    'rgb.png': (enc(RGB, 'PNG'), (40, 60, 3)),
    'rgb.jpg': (enc(RGB, 'JPEG', quality=95), (40, 60, 3)),
    'progressive.jpg': (enc(RGB, 'JPEG', progressive=True), (40, 60, 3)),
    'exif_rotated.jpg': (_exif_rotated(), (60, 40, 3)),
    'rgb.bmp': (enc(RGB, 'BMP'), (40, 60, 3)),
    'gray16.tif': (cv2.imencode('.tiff', G.astype(np.uint16) * 257)[1].tobytes(), (40, 60)),
    'gray16.png': (cv2.imencode('.png', G.astype(np.uint16) * 257)[1].tobytes(), (40, 60)),
    'rgb16.tif': (cv2.imencode('.tiff', (RGB.astype(np.uint16) * 257))[1].tobytes(), (40, 60, 3)),
    'float.tif': (enc(G.astype(np.float32) / 255, 'TIFF'), (40, 60)),
    'cmyk.jpg': (enc(RGB, 'JPEG', mode='CMYK'), (40, 60, 3)),
    'rgba.png': (enc(np.dstack([RGB, np.full_like(G, 128)]), 'PNG'), (40, 60, 3)),
    'palette_transparent.png': (_palette_transparent(), (40, 60, 3)),
    'la.png': (enc(np.dstack([G, np.full_like(G, 255)]), 'PNG'), (40, 60)),
    'one_pixel.png': (enc(np.zeros((1, 1), np.uint8), 'PNG'), (1, 1)),
    'wide.png': (enc(np.zeros((20, 10000), np.uint8), 'PNG'), (20, 10000)),
    'tall.png': (enc(np.zeros((10000, 20), np.uint8), 'PNG'), (10000, 20)),
}

_png, _jpg = GOOD['gray.png'][0], enc(RGB, 'JPEG')
BAD = {
    'zero.png': (b'', 'is empty'),
    'text.png': (b'this is a text file, not a picture\n' * 3, 'is not an image'),
    'random.jpg': (np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes(), 'is not an image'),
    'truncated.png': (_png[:len(_png) // 2], 'truncated'),
    'truncated_header.png': (_png[:20], 'truncated'),
    'truncated.jpg': (_jpg[:len(_jpg) // 2], 'truncated'),
    'bomb.png': (png_bomb(), '1,600,000,000 pixels, over the limit'),
    'zero_width.png': (png_bomb(0, 10), 'truncated or corrupt'),
    'animated.gif': (_animated_gif(), 'is a GIF file'),
    'image.webp': (enc(RGB, 'WEBP'), 'is a WEBP file'),
    'nan.tif': (_float_with_nan(), 'NaN'),
    'int32.tif': (enc(np.full((4, 4), 100000, np.int32), 'TIFF'), 'only 8- and 16-bit'),
}
