"Datasets laid out wrongly: each gives a DataError that names the file and the fix, and nothing is modified."
import json
import numpy as np, pandas as pd, pytest, cv2
from defect_nb.data import (DataError, from_folder, from_voc, from_masks, from_csv, load_table, make_split,
                            normalize_mask, classify_dls, segment_dls, MaskReader)


def img(p, shape=(16, 16), v=100):
    p.parent.mkdir(parents=True, exist_ok=True); cv2.imwrite(str(p), np.full(shape, v, np.uint8)); return p


def test_empty_class_folder(tmp_path):
    img(tmp_path / 'a' / '1.png'); (tmp_path / 'b').mkdir()
    with pytest.raises(DataError, match=r"class folder .*b holds no images"): from_folder(tmp_path)


def test_folder_without_classes(tmp_path):
    img(tmp_path / 'train' / '1.png')
    with pytest.raises(DataError, match='holds no class folders'): from_folder(tmp_path)


def test_voc_annotation_for_missing_image(tmp_path):
    img(tmp_path / 'IMAGES' / 'a.jpg'); (tmp_path / 'ANNOTATIONS').mkdir()
    (tmp_path / 'ANNOTATIONS' / 'b.xml').write_text('<annotation><filename>b.jpg</filename></annotation>')
    with pytest.raises(DataError, match="names image 'b.jpg'"): from_voc(tmp_path)


def test_voc_bad_xml(tmp_path):
    img(tmp_path / 'IMAGES' / 'a.jpg'); (tmp_path / 'ANNOTATIONS').mkdir()
    (tmp_path / 'ANNOTATIONS' / 'a.xml').write_text('<annotation><object>')
    with pytest.raises(DataError, match='a.xml is not valid XML'): from_voc(tmp_path)


def test_mask_without_image(tmp_path):
    img(tmp_path / 'images' / 'a.png'); img(tmp_path / 'masks' / 'a.png', v=0); img(tmp_path / 'masks' / 'b.png', v=0)
    with pytest.raises(DataError, match="mask\\(s\\) have no image, e.g. 'b'"): from_masks(tmp_path)


def test_image_without_mask(tmp_path):
    img(tmp_path / 'images' / 'a.png'); img(tmp_path / 'masks' / 'z.png', v=0)
    with pytest.raises(DataError, match='images/a.png has no mask'): from_masks(tmp_path)


def test_size_mismatch(tmp_path):
    img(tmp_path / 'images' / 'a.png', (16, 16)); img(tmp_path / 'masks' / 'a.png', (16, 17), v=0)
    with pytest.raises(DataError, match='is 16×16 but its mask a.png is 17×16'): from_masks(tmp_path)


def test_mask_values_checked_when_read(tmp_path):
    img(tmp_path / 'images' / 'a.png'); img(tmp_path / 'masks' / 'a.png', v=3)
    t = from_masks(tmp_path)
    with pytest.raises(DataError, match="mask 'a.png' holds values \\[3\\]"): MaskReader(16)(t.iloc[0])


def test_split_file_with_unknown_files_and_source_untouched(tmp_path, synth_small):
    t = load_table(synth_small)
    own = tmp_path / 'mine.csv'
    pd.DataFrame(dict(image=['images/ok/ok_0000.png', 'images/ok/ghost.png'], split=['train', 'test'])).to_csv(own, index=False)
    before = own.read_bytes()
    with pytest.raises(DataError, match="names 1 file\\(s\\) not in the dataset, e.g. 'images/ok/ghost.png'"): make_split(t, split_file=own)
    assert own.read_bytes() == before


def test_split_file_bad_names(tmp_path, synth_small):
    t = load_table(synth_small); own = tmp_path / 'mine.csv'
    pd.DataFrame(dict(image=['x'], split=['holdout'])).to_csv(own, index=False)
    with pytest.raises(DataError, match="unknown split name\\(s\\) \\['holdout'\\]"): make_split(t, split_file=own)


def test_csv_source(tmp_path):
    img(tmp_path / 'x' / 'a.png'); img(tmp_path / 'x' / 'b.png')
    (tmp_path / 'list.csv').write_text('image,label\nx/a.png,good\nx/b.png,bad\n')
    assert load_table(tmp_path / 'list.csv').label.tolist() == ['good', 'bad']
    (tmp_path / 'bad.csv').write_text('image,label\nx/c.png,good\n')
    with pytest.raises(DataError, match='do not exist'): from_csv(tmp_path / 'bad.csv')
    (tmp_path / 'nolabel.csv').write_text('path\nx/a.png\n')
    with pytest.raises(DataError, match="lacks column\\(s\\) \\['image', 'label'\\]"): from_csv(tmp_path / 'nolabel.csv')


def test_unsplit_table_refused(synth_small):
    with pytest.raises(DataError, match='call make_split first'): classify_dls(load_table(synth_small))


def test_same_seed_same_split_and_loaders(tmp_path, synth_small):
    t = load_table(synth_small)
    a, b = make_split(t, seed=9, save=False), make_split(t, seed=9, save=False)
    assert a.split.tolist() == b.split.tolist()
    dls = segment_dls(a, size=32, bs=4)
    x, y = dls.one_batch()
    assert tuple(x.shape) == (4, 3, 32, 32) and set(y.unique().tolist()) <= {0, 1}


def test_mask_suffix_layout(tmp_path):
    "x.png with x_mask.png beside it, in class folders."
    for c in ('good', 'bad'):
        img(tmp_path / c / 'a.png'); img(tmp_path / c / 'a_mask.png', v=0)
    t = from_masks(tmp_path)
    assert sorted(t.label) == ['bad', 'good'] and all(m.endswith('a_mask.png') for m in t['mask'])
    img(tmp_path / 'good' / 'b_mask.png', v=0)
    with pytest.raises(DataError, match='have no image'): from_masks(tmp_path)
