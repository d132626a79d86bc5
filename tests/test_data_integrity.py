"Data preparation never changes its sources, writes atomically, and gives the same files for the same seed; names cannot escape."
import hashlib
from pathlib import Path
import pandas as pd, pytest
from defect_nb.data import load_table, make_split, DataError


def digest(folder):
    "sha256 of every file under `folder`, by relative path."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob('*')) if p.is_file()}


def test_split_leaves_sources_untouched_and_is_repeatable(cli, synth_small, tmp_path):
    import shutil
    data = tmp_path / 'data'; shutil.copytree(synth_small, data)
    before = digest(data)
    outs = []
    for i in range(2):
        r = cli('data', '--path', data, '--seed', '7', '--split-file', tmp_path / f'split{i}.csv')
        assert r.returncode == 0, r.stderr
        outs.append((tmp_path / f'split{i}.csv').read_bytes())
    assert outs[0] == outs[1]                                                  # same seed, same bytes
    assert digest(data) == before                                              # nothing in the source changed or vanished
    assert not list(tmp_path.glob('.*.tmp'))                                   # no half-written output left behind


def test_synth_same_seed_same_files(cli, tmp_path):
    for d in ('a', 'b'):
        r = cli('synth', '--out', tmp_path / d, '--n-per-class', '3', '--size', '64', '--seed', '5')
        assert r.returncode == 0, r.stderr
    a, b = digest(tmp_path / 'a'), digest(tmp_path / 'b')
    assert a and a == b


def test_existing_split_file_is_read_not_rewritten(synth_small, tmp_path):
    own = tmp_path / 'mine.csv'
    t = make_split(load_table(synth_small), 3, split_file=own)
    first = own.read_bytes(); mtime = own.stat().st_mtime_ns
    t2 = make_split(load_table(synth_small), 99, split_file=own)               # another seed: the file still decides
    assert own.read_bytes() == first and own.stat().st_mtime_ns == mtime and (t.split == t2.split).all()


@pytest.mark.parametrize('name', ['../outside.png', '../../etc/passwd', 'sub/../../x.png'])
def test_csv_names_cannot_climb_out(tmp_path, name):
    from defect_nb.synth import synth_one
    import cv2
    (tmp_path / 'ds').mkdir(); img, _ = synth_one('ok', 32, __import__('numpy').random.default_rng(0))
    cv2.imwrite(str(tmp_path / 'outside.png'), img)
    csv = tmp_path / 'ds' / 'labels.csv'
    pd.DataFrame(dict(image=[name], label=['ok'])).to_csv(csv, index=False)
    with pytest.raises(DataError, match="lead outside the CSV's folder"): load_table(csv)


def test_csv_that_is_not_a_table(tmp_path):
    p = tmp_path / 'x.csv'; p.write_bytes(b'\xff\xfe\x00garbage\x00' * 50)
    with pytest.raises(DataError, match='not a readable CSV'): load_table(p)
