"""Properties, checked by hypothesis on generated inputs: `load_image` on any bytes, PNG round trips, `normalize_mask`'s
contract, and `make_split` as a seeded, stratified partition that never writes into the dataset's folder."""
import os, tempfile
from pathlib import Path
import numpy as np, pandas as pd, pytest, cv2
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra import numpy as hnp
from defect_nb.core import load_image, ImageError
from defect_nb.data import normalize_mask, make_split, DataError, SPLITS
from corpus import GOOD

# 50 examples a test in the suite; DEFECT_NB_FUZZ_EXAMPLES=5000 for a deep run. No example database: nothing is written to the tree.
FEW = settings(max_examples=int(os.environ.get('DEFECT_NB_FUZZ_EXAMPLES', 50)), deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])


def loads_or_refuses(data):
    "load_image's whole contract on untrusted bytes: a uint8 gray or RGB array, or an ImageError with a one-line message."
    try: a = load_image(data, name='fuzz.bin')
    except ImageError as e:
        assert 'fuzz.bin' in str(e) and '\n' not in str(e); return None
    assert a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) and a.size > 0, (a.dtype, a.shape)
    return a


# load_image --------------------------------------------------------------------------------------------------------

SIGNATURES = [b'', b'\x89PNG\r\n\x1a\n', b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR', b'\xff\xd8\xff', b'\xff\xd8\xff\xe0\x00\x10JFIF\x00',
              b'BM', b'II*\x00', b'MM\x00*', b'GIF89a', b'RIFF\x00\x00\x00\x00WEBP', b'\x00\x00\x01\x00']


@FEW
@given(st.sampled_from(SIGNATURES), st.one_of(st.binary(max_size=64), st.binary(min_size=500, max_size=3000)))
def test_load_image_on_any_bytes(sig, rest):
    "Random bytes, alone or behind the signature of each format a decoder might try."
    loads_or_refuses(sig + rest)


SMALL_GOOD = sorted(n for n, (d, shape) in GOOD.items() if np.prod(shape) <= 60 * 40)


@FEW
@given(st.sampled_from(SMALL_GOOD), st.data())
def test_load_image_on_damaged_files(name, data):
    "Real files with bytes overwritten and/or cut short: the decoders' error paths, not only the signature check."
    b = bytearray(GOOD[name][0])
    for _ in range(data.draw(st.integers(0, 12), label='flips')):
        b[data.draw(st.integers(0, len(b) - 1), label='at')] = data.draw(st.integers(0, 255), label='byte')
    cut = data.draw(st.integers(1, len(b)), label='keep')
    loads_or_refuses(bytes(b[:cut]))


@FEW
@given(hnp.arrays(st.sampled_from([np.uint8, np.uint16]),
                  st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([0, 3, 4]))
                    .map(lambda s: s[:2] if s[2] == 0 else s)))
def test_png_round_trip(a):
    "Gray, RGB and RGBA, 8 and 16 bit, written by OpenCV: read back with the right shape and the right values."
    bgr = a if a.ndim == 2 else a[..., [2, 1, 0, 3][:a.shape[2]]]
    out = load_image(cv2.imencode('.png', np.ascontiguousarray(bgr))[1].tobytes())
    assert out.dtype == np.uint8 and out.shape == a.shape[:2] + ((3,) if a.ndim == 3 else ())
    scale = 257. if a.dtype == np.uint16 else 1.
    if a.ndim == 3 and a.shape[2] == 4:                                   # transparent pixels blend onto black
        want, tol = a[..., :3] / scale * (a[..., 3:] / scale / 255.), 1.51
    else: want, tol = a / scale, (1.0 if a.dtype == np.uint16 else 0)  # 16-bit RGB: Pillow keeps the high byte
    assert np.abs(out - want).max() <= tol


# normalize_mask ----------------------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 16), st.integers(1, 16))


@FEW
@given(hnp.arrays(np.uint8, shapes, elements=st.sampled_from([0, 255])), st.sampled_from([np.uint8, np.int32, np.uint16]))
def test_mask_0_255(m, dtype):
    out = normalize_mask(m.astype(dtype))
    assert out.dtype == np.uint8 and out.shape == m.shape and np.array_equal(out, (m > 0).astype(np.uint8))


@FEW
@given(hnp.arrays(np.uint8, shapes, elements=st.sampled_from([0, 1])), st.sampled_from([np.uint8, np.int64, bool, np.float32]))
def test_mask_0_1(m, dtype):
    out = normalize_mask(m.astype(dtype))
    assert out.dtype == np.uint8 and np.array_equal(out, m)


@FEW
@given(st.integers(2, 12), shapes, st.data())
def test_mask_class_indices(n, shape, data):
    m = data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, n - 1)))
    assert np.array_equal(normalize_mask(m, n), m)
    assert np.array_equal(normalize_mask(np.dstack([m, m, m]), n), m)                      # three equal channels: one
    bad = m.copy(); bad.flat[data.draw(st.integers(0, m.size - 1))] = data.draw(st.integers(n, 255))
    if n > 2:
        with pytest.raises(DataError, match=f'class index {bad.max()} but there are {n} classes'): normalize_mask(bad, n)
    elif bad.max() < 128:                                                # 2 classes: 0..127 is not a mask, 128+ is a soft mask
        with pytest.raises(DataError, match='for a 2-class mask'): normalize_mask(bad, n)
    else: assert np.array_equal(normalize_mask(bad, n), (bad > 127).astype(np.uint8))


@FEW
@given(hnp.arrays(np.int16, shapes, elements=st.integers(-300, 300)), st.integers(2, 8))
def test_mask_any_integers(m, n):
    "Whatever the values: class indices in 0..n-1 of the same shape, or a DataError (negative values always are one)."
    try: out = normalize_mask(m, n, name='m.png')
    except DataError as e:
        assert 'm.png' in str(e); return
    assert m.min() >= 0 and out.dtype == np.uint8 and out.shape == m.shape and out.max() < n


@FEW
@given(hnp.arrays(np.float32, shapes, elements=st.floats(0, 1, width=32)))
def test_mask_soft_floats(m):
    assert np.array_equal(normalize_mask(m), (m > 0.5).astype(np.uint8))
    m = m.copy(); m.flat[0] = np.nan
    with pytest.raises(DataError, match='NaN'): normalize_mask(m)


@FEW
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 8), st.integers(1, 8), st.just(3)), elements=st.sampled_from([0, 1])))
def test_mask_colour_channels_refused(m):
    if not (m[..., 0] == m[..., 1]).all() or not (m[..., 0] == m[..., 2]).all():
        with pytest.raises(DataError, match='colour mask'): normalize_mask(m)
    else: assert np.array_equal(normalize_mask(m), m[..., 0])


# make_split --------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def readonly_root(tmp_path_factory):
    "A dataset folder marked read-only (root ignores the bits, so the tests compare its listing instead)."
    d = tmp_path_factory.mktemp('shared') / 'dataset'; d.mkdir(); (d / 'README').write_text('a shared dataset\n')
    d.chmod(0o555)
    yield d
    d.chmod(0o755)


def table(root, labels):
    "A label table as the adapters make it: image paths under `root`, sorted, with the attrs make_split reads."
    df = pd.DataFrame(dict(image=[str(root / f'img_{i:04d}.png') for i in range(len(labels))], label=labels))
    df.attrs.update(root=str(root), source='csv', classes=sorted(set(labels)), codes=None, stratify=['label'])
    return df


labels = st.lists(st.sampled_from(['ok', 'scratch', 'pit', 'crack']), min_size=1, max_size=120)
pcts = st.tuples(st.floats(0, 0.45), st.floats(0, 0.45))


@FEW
@given(labels, pcts, st.integers(0, 2**32 - 1))
def test_split_is_a_stratified_seeded_partition(readonly_root, labels, pcts, seed):
    valid_pct, test_pct = pcts
    df = table(readonly_root, labels); listing = sorted(os.listdir(readonly_root))
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / 'split.csv'
        s = make_split(df, seed, valid_pct, test_pct, split_file=f)
        assert 'split' not in df and s.image.tolist() == df.image.tolist() and s.label.tolist() == labels   # a copy, same rows
        assert s.split.isin(SPLITS).all() and len(s) == len(df)                                             # each row one split
        saved = pd.read_csv(f)
        assert sorted(saved.image) == sorted(f'img_{i:04d}.png' for i in range(len(labels)))                 # each image once
        assert dict(zip(saved.image, saved.split)) == dict(zip((Path(p).name for p in s.image), s.split))
        for c, g in s.groupby('label'):
            n = len(g)
            assert (g.split == 'train').any(), (c, n)                                                          # every class trains
            assert abs((g.split == 'test').sum() - n * test_pct) <= 1, (c, n, (g.split == 'test').sum())
            assert abs((g.split == 'valid').sum() - n * valid_pct) <= 1, (c, n, (g.split == 'valid').sum())
        again = make_split(df, seed, valid_pct, test_pct, save=False)
        assert again.split.tolist() == s.split.tolist()                                                       # same seed, same split
        other = make_split(df, seed + 1, 0.3, 0.3, split_file=f)
        assert other.split.tolist() == s.split.tolist()                                                       # a split file is reused
    assert sorted(os.listdir(readonly_root)) == listing


def test_split_of_a_readonly_dataset_goes_to_data_dir(readonly_root, tmp_path, monkeypatch):
    "With no split file given, a read-only dataset's split is kept under DEFECT_NB_DATA, not beside the images."
    monkeypatch.setenv('DEFECT_NB_DATA', str(tmp_path / 'data'))
    listing = sorted(os.listdir(readonly_root))
    s = make_split(table(readonly_root, ['a', 'b'] * 10), seed=3)
    assert Path(s.attrs['split_file']).parent == tmp_path / 'data' / 'splits' and Path(s.attrs['split_file']).exists()
    assert sorted(os.listdir(readonly_root)) == listing
