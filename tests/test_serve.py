"The HTTP service: in process, and a real uvicorn on 127.0.0.1 under a bounded burst of good and bad requests."
import concurrent.futures as cf, os, socket, subprocess, sys, time, shutil
import httpx, numpy as np, pytest, cv2
from defect_nb.synth import synthesize, synth_one
from defect_nb.train import train_classifier
from defect_nb.export import export_bundle


@pytest.fixture(scope='module')
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp('srv')
    synthesize(d / 'syn', 5, 64, seed=0, progress=False)
    r = train_classifier(d / 'syn', 'small_cnn', epochs=1, size=48, bs=8, out=d / 'run', num_workers=0, progress=False)
    export_bundle(r.path, d / 'steel', report=False)
    return d / 'steel'


def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


PNG = cv2.imencode('.png', synth_one('scratches', 64, 1)[0])[1].tobytes()
BAD = [b'', b'not an image at all', PNG[:len(PNG) // 2], b'\x89PNG\r\n\x1a\n' + b'\0' * 30]


@pytest.fixture(scope='module')
def server(bundle):
    port = free_port()
    exe = shutil.which('defect-nb', path=str(os.path.dirname(sys.executable)))
    p = subprocess.Popen([exe, 'serve', '--model', str(bundle), '--port', str(port), '--max-mb', '1'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f'http://127.0.0.1:{port}'
    for _ in range(150):
        try:
            if httpx.get(url + '/health', timeout=1).status_code == 200: break
        except httpx.HTTPError: time.sleep(0.2)
    else:
        p.kill(); pytest.fail(f"server did not start: {p.stderr.read()[-2000:]}")
    yield url
    p.terminate(); p.wait(10)


def test_real_server_burst(server):
    "200 requests, a third of them bad, 8 at a time: zero 5xx, every good image answered, the server still healthy."
    def one(i):
        data = PNG if i % 3 else BAD[i % len(BAD)]
        r = httpx.post(server + '/predict', files={'file': (f'img{i}.png', data, 'image/png')}, timeout=30)
        return i % 3 != 0, r.status_code, r.json()
    with cf.ThreadPoolExecutor(8) as ex: res = list(ex.map(one, range(200)))
    assert not [s for _, s, _ in res if s >= 500]
    good = [(s, j) for ok, s, j in res if ok]
    assert all(s == 200 and j['prediction'] for s, j in good) and len({j['prediction'] for _, j in good}) == 1
    assert all(400 <= s < 500 and j['message'] for ok, s, j in res if not ok)
    assert httpx.get(server + '/health').json()['status'] == 'ok'


def test_real_server_limits(server):
    r = httpx.post(server + '/predict', files={'file': ('big.png', b'0' * (2 * 2**20), 'image/png')}, timeout=30)
    assert r.status_code == 413 and r.json()['error'] == 'too_large'
    r = httpx.post(server + '/predict', timeout=30)
    assert r.status_code == 400 and r.json()['error'] == 'missing_file'
    r = httpx.post(server + '/predict?model=other', files={'file': ('a.png', PNG)}, timeout=30)
    assert r.status_code == 404
    assert httpx.get(server + '/docs').status_code == 200 and '/predict' in httpx.get(server + '/openapi.json').json()['paths']


def test_client_disconnecting_mid_upload(server):
    host, port = server.split('//')[1].split(':')
    s = socket.create_connection((host, int(port)), timeout=5)
    body = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + PNG[:200]
    s.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n' + body)
    s.close()
    r = httpx.post(server + '/predict', files={'file': ('a.png', PNG)}, timeout=30)
    assert r.status_code == 200


def test_serve_refuses_bad_bundle(cli, tmp_path):
    (tmp_path / 'nb').mkdir()
    r = cli('serve', '--model', tmp_path / 'nb', '--port', str(free_port()))
    assert r.returncode == 2 and 'no bundle.json' in r.stderr
