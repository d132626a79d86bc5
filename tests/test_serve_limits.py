"""The service cannot be starved by small files. A 629-byte JPEG that declares 7,000 × 7,000 pixels costs about 450 MB
of peak RSS when `core.load_image` decodes it under the library's 50-Mpx limit (measured on the 2-core build machine).
Sent 16 at a time to a real `defect-nb serve` on 127.0.0.1, every one is answered 413 and the server's peak RSS (VmHWM)
grows by less than MEM_BOUND_MB: the service's default pixel limit refuses them from their header. With the limit raised
so that they are decoded, the bound on concurrent decodes (DEFECT_NB_DECODES=1) keeps the growth to about one request's
worth instead of eight."""
import concurrent.futures as cf, io, os, shutil, subprocess, time
from pathlib import Path
import httpx, numpy as np, pytest
from PIL import Image
from conftest import free_port, BIN

MEM_BOUND_MB = 50            # peak RSS growth allowed for 16 concurrent bombs under the default limit
N = 16


def jpeg_declaring(w, h, mode='RGB'):
    "A valid 16×16 JPEG whose frame header (SOF0) is patched to declare w×h pixels: a few hundred bytes."
    b = io.BytesIO(); Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).convert(mode).save(b, 'JPEG'); d = bytearray(b.getvalue())
    i = d.index(b'\xff\xc0'); d[i + 5:i + 9] = h.to_bytes(2, 'big') + w.to_bytes(2, 'big'); return bytes(d)


def peak_mb(pid):
    "The peak resident memory (VmHWM) of a process, MB."
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024


def serve(bundle, tmp, **env):
    port = free_port(); log = open(tmp / 'server.log', 'w')
    p = subprocess.Popen([shutil.which('defect-nb', path=str(BIN)), 'serve', '--model', str(bundle), '--port', str(port)],
                         env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    for _ in range(300):
        if p.poll() is not None: pytest.fail((tmp / 'server.log').read_text()[-2000:])
        try:
            if httpx.get(url + '/health', timeout=1).status_code == 200: return p, url
        except httpx.HTTPError: time.sleep(0.2)
    p.kill(); pytest.fail('server did not start')


def burst(url, data, n=N):
    def one(i): return httpx.post(url + '/predict', files={'file': (f'bomb{i}.jpg', data, 'image/jpeg')}, timeout=120)
    with cf.ThreadPoolExecutor(n) as ex: return list(ex.map(one, range(n)))


@pytest.fixture(scope='module')
def good_png():
    import cv2
    from defect_nb.synth import synth_one
    return cv2.imencode('.png', synth_one('scratches', 64, 1)[0])[1].tobytes()


def test_concurrent_bombs_hold_the_memory_bound(bundle, tmp_path, good_png):
    data = jpeg_declaring(7000, 7000); assert len(data) < 2048
    p, url = serve(bundle, tmp_path)
    try:
        assert httpx.get(url + '/health').json()['limits']['max_pixels'] == 2048 ** 2        # 48-px model: the floor
        assert httpx.post(url + '/predict', files={'file': ('ok.png', good_png)}, timeout=30).status_code == 200   # warm
        before = peak_mb(p.pid)
        res = burst(url, data)
        grown = peak_mb(p.pid) - before; print(f"peak RSS growth: {grown:.1f} MB for {N} concurrent bombs")
        assert all(r.status_code == 413 and '49,000,000 pixels' in r.json()['message'] for r in res), [r.text[:200] for r in res]
        assert grown < MEM_BOUND_MB, f"peak RSS grew by {grown:.0f} MB under {N} concurrent bombs (bound {MEM_BOUND_MB} MB)"
        assert httpx.post(url + '/predict', files={'file': ('ok.png', good_png)}, timeout=30).status_code == 200
    finally:
        p.terminate(); p.wait(10)


def test_decode_bound_when_the_limit_is_raised(bundle, tmp_path, good_png):
    "Limit raised to 60 Mpx so the bombs are decoded (a gray one decodes whole, as a flat 49-Mpx image): one decode at a time keeps the growth near one."
    data = jpeg_declaring(7000, 7000, 'L')                  # gray: ~1/3 of the RGB cost, kinder to the test machine
    p, url = serve(bundle, tmp_path, DEFECT_NB_MAX_PIXELS='60000000', DEFECT_NB_DECODES='1')
    try:
        assert httpx.get(url + '/health').json()['limits']['decodes'] == 1
        assert httpx.post(url + '/predict', files={'file': ('ok.png', good_png)}, timeout=30).status_code == 200
        before = peak_mb(p.pid)
        assert httpx.post(url + '/predict', files={'file': ('bomb.jpg', data)}, timeout=120).status_code < 500
        one = peak_mb(p.pid) - before                        # what one such request costs this server
        res = burst(url, data, 8)
        grown = peak_mb(p.pid) - before
        assert all(r.status_code == 200 or 400 <= r.status_code < 500 for r in res), [r.text[:200] for r in res]
        print(f"peak RSS growth: one request {one:.0f} MB, then 8 at once {grown:.0f} MB")
        assert one > 100, one                                 # the file is a real threat at this limit
        assert grown < 1.5 * one + 50, f"peak RSS grew by {grown:.0f} MB for 8 concurrent bombs; one alone costs {one:.0f} MB"
    finally:
        p.terminate(); p.wait(10)
