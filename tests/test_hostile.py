"""Hostile files through every door. Each file of tests/corpus.py (empty, random, text named .png, truncated PNG and JPEG,
PNG bomb, 16-bit and float TIFF, CMYK and progressive JPEG, animated GIF, 1×1 and 10000×20, EXIF-rotated, gray/RGB/RGBA)
goes through the CLI, the HTTP service and the dashboard's upload handler, and each must say what the library says:
`load_image` gives an array (tests/test_images.py checks it) and then every door gives the same class as the bundle's
`Predictor`, or it raises `ImageError` and every door gives that message as one clear error, never a traceback or a 5xx.
Then: a bounded fuzz of POST /predict with malformed multipart bodies, and upload or file names that try to leave
their folder."""
import datetime, html, json, os, random, re, time
from pathlib import Path
import httpx, numpy as np, pytest, cv2
from defect_nb.core import load_image, ImageError
from corpus import GOOD, BAD
from conftest import tiny_bundle

CORPUS = {**GOOD, **BAD}
NAMES = sorted(CORPUS)


def library(name):
    "What the library says of a corpus file: ('ok', array) or ('error', the ImageError message)."
    try: return 'ok', load_image(CORPUS[name][0], name=name)
    except ImageError as e: return 'error', str(e)


@pytest.fixture(scope='module')
def predictor(bundle):
    from defect_nb.inference import Predictor
    return Predictor.load(bundle)


def test_corpus_is_what_the_library_says():
    "The premise of the tests below: the corpus's good files load and its bad ones raise."
    assert [n for n in NAMES if library(n)[0] != ('ok' if n in GOOD else 'error')] == []


# (b) the command line -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_cli_predict(name, cli, bundle, predictor, tmp_path):
    (tmp_path / name).write_bytes(CORPUS[name][0])
    kind, out = library(name)
    r = cli('predict', '--model', bundle, '--image', name, '--json')
    assert 'Traceback' not in r.stderr, r.stderr[-2000:]
    if kind == 'ok':
        assert r.returncode == 0 and r.stderr == '', r.stderr[-2000:]
        res, want = json.loads(r.stdout), predictor.predict(out, filename=name)
        assert res['filename'] == name and res['prediction'] == want['prediction']
        assert max(abs(res['probabilities'][c] - p) for c, p in want['probabilities'].items()) < 1e-5
    else:
        assert r.returncode == 2
        assert r.stderr == f"defect-nb predict: error: {out}\n"                # exactly one line, the library's reason
        assert json.loads(r.stdout) == dict(error='ImageError', message=out)
        plain = cli('predict', '--model', bundle, '--image', name)          # without --json: the same line, nothing on stdout
        assert (plain.returncode, plain.stdout, plain.stderr) == (2, '', r.stderr)


# (c) the HTTP service -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_http_predict(name, server, predictor):
    kind, out = library(name)
    r = httpx.post(server + '/predict', files={'file': (name, CORPUS[name][0], 'application/octet-stream')}, timeout=60)
    assert r.headers['content-type'] == 'application/json'
    if kind == 'ok':
        assert r.status_code == 200, r.text[:500]
        assert r.json()['filename'] == name and r.json()['prediction'] == predictor.predict(out)['prediction']
    else:
        assert r.status_code == (413 if 'over the limit' in out else 400), r.text[:500]
        if 'over the limit' in out:                 # the service's pixel limit is lower than the library's (serve.upload_pixel_limit)
            import re
            lim = lambda m: re.sub(r'limit of [\d,]+', 'limit of N', m)
            assert r.json()['error'] == 'bad_image' and lim(r.json()['message']) == lim(out), r.json()
        else: assert r.json() == dict(error='bad_image', message=out)


# (d) the dashboard: the upload handler (Dashboard._on_upload → read_upload → analyse_bundle) -----------------------

@pytest.fixture(scope='module')
def dash(bundle, tmp_path_factory):
    pytest.importorskip('ipywidgets')
    from defect_nb.dashboard import Dashboard
    d = Dashboard(tmp_path_factory.mktemp('no_runs'), bundles=bundle.parent)
    assert d.run.value == str(bundle) and 'dnb-info' in d.status.value, d.status.value
    return d


def upload(d, name, data):
    "What the browser does: set the FileUpload's value (the handler runs, then clears it)."
    d.upload.value = (dict(name=name, type='application/octet-stream', size=len(data), content=memoryview(data),
                           last_modified=datetime.datetime.now(datetime.timezone.utc)),)


@pytest.mark.parametrize('name', NAMES)
def test_dashboard_upload(name, dash, predictor):
    kind, out = library(name)
    upload(dash, name, CORPUS[name][0])                                  # raising here would be the failure
    assert dash.upload.value == ()                                       # cleared, ready for the next file
    status = html.unescape(dash.status.value)
    if kind == 'ok':
        assert 'dnb-info' in status and 'result(s) in' in status, status
        title, verdict = (w.value for w in dash.panels.children[0].children[:2])
        assert html.unescape(title).endswith(f'· {name}') and f">{predictor.predict(out)['prediction']} <b>" in verdict
    else:
        assert 'dnb-error' in status and out in status, status
        upload(dash, 'after.png', GOOD['gray.png'][0])                   # and the dashboard still works
        assert 'result(s) in' in dash.status.value and 'after.png' in dash.panels.children[0].children[0].value


def test_dashboard_escapes_upload_names(dash):
    "A file name is text: the dashboard must show it, not run it as HTML."
    evil = '<img src=x onerror=alert(1)>'
    upload(dash, evil + '.png', b'not an image')                           # the error message quotes the name
    assert '<img' not in dash.status.value, dash.status.value
    upload(dash, evil + '.png', GOOD['gray.png'][0])                       # the result panel's title shows the name
    assert '<img' not in dash.panels.children[0].children[0].value


# a bounded fuzz of POST /predict -------------------------------------------------------------------------------------

GOOD_PNG = GOOD['gray.png'][0]


def multipart(boundary, parts):
    "A multipart body from (headers, data) pairs, headers as one bytes block."
    b = boundary.encode('latin-1')
    return b''.join(b'--' + b + b'\r\n' + h + b'\r\n\r\n' + d + b'\r\n' for h, d in parts) + b'--' + b + b'--\r\n'


def disposition(name=b'file', filename=b'a.png', ctype=b'image/png'):
    h = b'Content-Disposition: form-data; name="' + name + b'"' + (b'; filename="' + filename + b'"' if filename is not None else b'')
    return h + (b'\r\nContent-Type: ' + ctype if ctype else b'')


def fuzz_case(rng: random.Random, i: int):
    "One malformed (or, every tenth, well-formed) request: (description, body, content-type, expect_ok)."
    bchars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\'()+_,-./:=?'
    boundary = ''.join(rng.choice(bchars) for _ in range(rng.randint(1, 70)))
    ct = f'multipart/form-data; boundary={boundary}'
    junk = lambda n: rng.randbytes(n)
    if i % 10 == 0: return 'control', multipart(boundary, [(disposition(), GOOD_PNG)]), ct, True
    kind = rng.choice(['random_body', 'random_payload', 'no_boundary', 'wrong_type', 'huge_filename', 'odd_filename',
                       'empty_field', 'no_filename', 'other_field', 'truncated', 'mutated', 'header_garbage', 'two_files', 'no_type'])
    if kind == 'random_body': return kind, junk(rng.randint(0, 5000)), ct, False
    if kind == 'random_payload': return kind, multipart(boundary, [(disposition(), junk(rng.randint(1, 3000)))]), ct, False
    if kind == 'no_boundary': return kind, multipart(boundary, [(disposition(), GOOD_PNG)]), 'multipart/form-data', False
    if kind == 'wrong_type':
        return kind, multipart(boundary, [(disposition(), GOOD_PNG)]), rng.choice(
            ['text/plain', 'application/json', 'image/png', 'application/x-www-form-urlencoded', 'multipart/mixed; boundary=' + boundary,
             'application/octet-stream', ';;;', 'multipart/form-data; boundary=']), False
    if kind == 'huge_filename':
        fn = b'x' * rng.choice([300, 5_000, 60_000, 200_000]) + b'.png'
        return kind, multipart(boundary, [(disposition(filename=fn), GOOD_PNG)]), ct, None   # may be refused as a header too long
    if kind == 'odd_filename':
        fn = rng.choice([b'../../evil.png', b'..\\..\\evil.png', b'/etc/passwd', b'a\x00b.png', b'\xff\xfe.png', b'..', b'.', b'',
                         b'CON', b'a"b.png', b'%2e%2e%2fevil.png', b'\xe2\x80\xaegnp.exe', b'a\rb.png'])
        return kind, multipart(boundary, [(disposition(filename=fn), GOOD_PNG)]), ct, None
    if kind == 'empty_field': return kind, multipart(boundary, [(disposition(), b'')]), ct, False
    if kind == 'no_filename': return kind, multipart(boundary, [(disposition(filename=None, ctype=None), GOOD_PNG)]), ct, False
    if kind == 'other_field': return kind, multipart(boundary, [(disposition(name=b'image'), GOOD_PNG)]), ct, False
    if kind == 'truncated':
        body = multipart(boundary, [(disposition(), GOOD_PNG)]); return kind, body[:rng.randint(0, len(body) - 1)], ct, None
    if kind == 'mutated':
        body = bytearray(multipart(boundary, [(disposition(), GOOD_PNG)]))
        for _ in range(rng.randint(1, 20)): body[rng.randrange(len(body))] = rng.randrange(256)
        return kind, bytes(body), ct, None
    if kind == 'header_garbage': return kind, multipart(boundary, [(junk(rng.randint(0, 200)).replace(b'\r\n\r\n', b''), GOOD_PNG)]), ct, None
    if kind == 'two_files': return kind, multipart(boundary, [(disposition(), GOOD_PNG), (disposition(filename=b'b.png'), junk(100))]), ct, None
    return kind, multipart(boundary, [(disposition(ctype=None), GOOD_PNG)]), ct, True            # no part Content-Type: fine


def test_fuzz_predict_never_5xx(server_info):
    """150 malformed multipart requests on one keep-alive client: never a 5xx, always JSON, no traceback in the server's
    log; the well-formed ones still answered."""
    server = server_info['url']
    rng, seen, deadline = random.Random(1234), [], time.monotonic() + 120
    with httpx.Client(timeout=30) as c:
        for i in range(150):
            assert time.monotonic() < deadline, f"the fuzz took over 120 s ({i} requests done)"
            kind, body, ct, ok = fuzz_case(rng, i)
            r = c.post(server + '/predict', content=body, headers={'content-type': ct})
            seen.append((i, kind, r.status_code))
            assert r.status_code < 500, (i, kind, r.status_code, r.text[:300])
            assert r.headers['content-type'] == 'application/json' and isinstance(r.json(), dict), (i, kind, r.text[:300])
            if ok is True: assert r.status_code == 200 and r.json()['prediction'], (i, kind, r.text[:300])
            if ok is False: assert 400 <= r.status_code < 500, (i, kind, r.status_code, r.text[:300])
    kinds = {k for _, k, _ in seen}
    assert len(kinds) >= 12 and sum(s == 200 for *_, s in seen) >= 15, seen
    assert httpx.get(server + '/health', timeout=10).json()['status'] == 'ok'
    assert httpx.post(server + '/predict', files={'file': ('a.png', GOOD_PNG)}, timeout=30).status_code == 200
    assert 'Traceback' not in server_info['log'].read_text(errors='replace')


@pytest.mark.parametrize('how', ['no_boundary', 'bad_multipart', 'unknown_route', 'wrong_method'])
def test_every_4xx_is_error_and_message(server, how):
    if how == 'no_boundary': r = httpx.post(server + '/predict', content=b'x', headers={'content-type': 'multipart/form-data'})
    elif how == 'bad_multipart': r = httpx.post(server + '/predict', content=b'x', headers={'content-type': 'multipart/form-data; boundary=b'})
    elif how == 'unknown_route': r = httpx.get(server + '/nope')
    else: r = httpx.get(server + '/predict')
    assert 400 <= r.status_code < 500
    assert set(r.json()) == {'error', 'message'}, r.json()


# path safety ---------------------------------------------------------------------------------------------------------

def tree(root):
    "Every file and folder under `root`, relative, with its size (folders: -1)."
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in Path(root).rglob('*') if not p.is_symlink()}




@pytest.mark.parametrize('upload_name', ['../../evil.png', '/etc/passwd', 'a/../../b/evil.png', '....//....//evil.png',
                                         '..\\..\\evil.png', 'evil\x00.png', '..', '.'])
def test_upload_name_is_a_plain_name(server, upload_name):
    "The `filename` in the answer is a bare file name: no separator of any OS, no control character, not '.' or '..'."
    body = multipart('bnd', [(disposition(filename=upload_name.encode()), GOOD_PNG)])     # raw: httpx would escape NUL
    r = httpx.post(server + '/predict', content=body, headers={'content-type': 'multipart/form-data; boundary=bnd'}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    name = r.json()['filename']
    assert name and not re.search(r'[/\\\x00-\x1f]', name) and name not in ('.', '..'), name


def test_upload_names_write_nothing(server_info):
    "Hostile upload names, good and bad images, /predict and /segment: nothing appears beside the server, above its cwd, or in its TMPDIR."
    root, cwd = server_info['root'], server_info['cwd']
    before = tree(root)
    names = ['../../evil.png', '../../../evil.png', '/tmp/evil.png', str(root / 'evil.png'), '..\\..\\evil.png', 'evil\x00.png']
    for n in names:
        for data in (GOOD_PNG, b'not an image'):
            for ep in ('/predict', '/segment'):
                body = multipart('bnd', [(disposition(filename=n.encode()), data)])
                r = httpx.post(server_info['url'] + ep, content=body, headers={'content-type': 'multipart/form-data; boundary=bnd'}, timeout=30)
                assert r.status_code < 500, (n, ep, r.text[:300])
    assert tree(root) == before
    for d in [cwd, cwd.parent, cwd.parent.parent, root, Path('/tmp'), Path.cwd()]:
        assert not list(d.glob('evil*')), list(d.glob('evil*'))


def test_run_folder_named_after_arch_cannot_escape(synth_small, tmp_path, monkeypatch):
    "`train` names its default run folder <arch>-<source>: an architecture name full of '..' is refused before any folder is made."
    from defect_nb.train import train
    monkeypatch.chdir(tmp_path); monkeypatch.setenv('DEFECT_NB_RUNS', str(tmp_path / 'runs' / 'r'))
    with pytest.raises(ValueError, match='unknown architecture'): train(synth_small, arch='../../../evil', epochs=1, progress=False)
    assert list(tmp_path.rglob('*')) == []


@pytest.fixture(scope='module')
def seg_bundle(tmp_path_factory):
    "A tiny segmenter bundle (unet_tiny, 32 px, one epoch), for `predict --mask-dir`, the one verb that names files after inputs."
    return tiny_bundle(tmp_path_factory.mktemp('seg'), 'segment', 'unet_tiny', n_per_class=3, size=32, name='bundle')


def test_mask_dir_cannot_be_escaped(cli, seg_bundle, tmp_path):
    """`predict --mask-dir` names each mask after its image: images in nested folders, and --image paths full of '..',
    give masks inside the mask folder and nowhere else."""
    src = tmp_path / 'in' / 'deep' / 'er'; src.mkdir(parents=True)
    (src / 'x.png').write_bytes(GOOD_PNG); (tmp_path / 'in' / 'top.png').write_bytes(GOOD['rgb.png'][0])
    (tmp_path / 'work').mkdir()
    before = tree(tmp_path)
    r = cli('predict', '--model', seg_bundle, '--folder', '../in', '--mask-dir', 'm', '--out', 'r.csv', cwd=tmp_path / 'work')
    assert r.returncode == 0, r.stderr[-2000:]
    r = cli('predict', '--model', seg_bundle, '--image', '../in/deep/../deep/er/../../../in/deep/er/x.png', '--mask-dir', 'one',
            cwd=tmp_path / 'work')
    assert r.returncode == 0 and json.loads(r.stdout)['filename'] == 'x.png', r.stderr[-2000:]
    new = sorted(set(tree(tmp_path)) - set(before))
    assert new == ['work/m', 'work/m/deep', 'work/m/deep/er', 'work/m/deep/er/x.png', 'work/m/top.png', 'work/one', 'work/one/x.png',
                   'work/r.csv'], new
    assert {k: v for k, v in tree(tmp_path).items() if k in before} == before         # no input touched
    m = cv2.imread(str(tmp_path / 'work' / 'm' / 'top.png'), cv2.IMREAD_UNCHANGED)
    assert m.shape == (40, 60) and set(np.unique(m)) <= {0, 255}


def test_masks_of_same_stem_do_not_collide(cli, seg_bundle, tmp_path):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'x.png').write_bytes(GOOD_PNG); (tmp_path / 'in' / 'x.tif').write_bytes(GOOD['gray16.tif'][0])
    r = cli('predict', '--model', seg_bundle, '--folder', 'in', '--mask-dir', 'm', '--out', 'r.csv')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path / 'm').iterdir())) == 2, sorted(os.listdir(tmp_path / 'm'))


def test_mask_dir_never_overwrites_an_image(cli, seg_bundle, tmp_path):
    "--mask-dir pointed at the input folder (a slip of the keyboard) must not replace the images with their masks."
    (tmp_path / 'in').mkdir(); (tmp_path / 'in' / 'x.png').write_bytes(GOOD['rgb.png'][0])
    r = cli('predict', '--model', seg_bundle, '--folder', 'in', '--mask-dir', 'in', '--out', 'r.csv')
    assert (tmp_path / 'in' / 'x.png').read_bytes() == GOOD['rgb.png'][0], r.stderr[-500:]
