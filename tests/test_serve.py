"""The HTTP service, a real uvicorn on 127.0.0.1 (the session's `server`): a bounded burst of good and bad requests, its
limits, and faults: clients that go away mid-request, trickle an oversized upload, hold connections open, or arrive 64
at once; after each the server still answers /health and a good /predict."""
import concurrent.futures as cf, os, select, socket, struct, threading, time
import httpx, pytest, cv2
from defect_nb.synth import synth_one
from conftest import free_port


PNG = cv2.imencode('.png', synth_one('scratches', 64, 1)[0])[1].tobytes()
BAD = [b'', b'not an image at all', PNG[:len(PNG) // 2], b'\x89PNG\r\n\x1a\n' + b'\0' * 30]


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


def healthy(server):
    "The server still answers /health and a good /predict."
    assert httpx.get(server + '/health', timeout=30).json()['status'] == 'ok'
    r = httpx.post(server + '/predict', files={'file': ('a.png', PNG)}, timeout=30)
    assert r.status_code == 200 and r.json()['prediction'], r.text[:300]


def connect(server):
    host, port = server.split('//')[1].split(':')
    return socket.create_connection((host, int(port)), timeout=10)


def open_fds(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


HEAD = b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n'
PART = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
def chunk(data): return b'%x\r\n' % len(data) + data + b'\r\n'
CUTS = {                                                                  # what a client sends before it goes away
    'mid_headers': HEAD[:40],
    'after_headers': HEAD + b'Content-Length: 100000\r\n\r\n',
    'mid_body': HEAD + b'Content-Length: 100000\r\n\r\n' + PART + PNG[:200],
    'mid_body_chunked': HEAD + b'Transfer-Encoding: chunked\r\n\r\n' + chunk(PART) + chunk(PNG[:200]),
    'reset_mid_body': HEAD + b'Content-Length: 100000\r\n\r\n' + PART + PNG[:200],
}


@pytest.mark.parametrize('cut', sorted(CUTS))
def test_client_disconnecting(server_info, cut):
    "Twenty clients that go away mid-request (closed, or reset): no file descriptor, temporary file or traceback left behind."
    url, pid = server_info['url'], server_info['pid']
    healthy(url); fds, tmp = open_fds(pid), sorted(os.listdir(server_info['tmp']))
    for _ in range(20):
        s = connect(url); s.sendall(CUTS[cut])
        if cut.startswith('reset'): s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))   # RST, not FIN
        s.close()
    healthy(url)
    for _ in range(50):                                                   # the server notices the last ones asynchronously
        if open_fds(pid) <= fds + 2: break
        time.sleep(0.1)
    assert open_fds(pid) <= fds + 2 and sorted(os.listdir(server_info['tmp'])) == tmp
    assert 'Traceback' not in server_info['log'].read_text(errors='replace')


def send_until_answered(s, head, pieces, delay):
    "Send `head`, then `pieces` one by one (`delay` s apart) until the server answers; returns (bytes sent after head, answer)."
    s.sendall(head); sent = 0
    for p in pieces:
        if select.select([s], [], [], 0)[0]: break
        try: s.sendall(p)
        except (BrokenPipeError, ConnectionResetError): break
        sent += len(p); time.sleep(delay)
    s.settimeout(30); answer = b''
    while b'\r\n\r\n' not in answer:
        got = s.recv(65536)
        if not got: break
        answer += got
    return sent, answer


def test_oversized_upload_sent_slowly_is_refused_at_once(server):
    "A 3 MB upload (limit 1 MB) trickled in 2 KB pieces: refused with 413 from its Content-Length, before the body comes."
    s = connect(server); t = time.monotonic()
    sent, answer = send_until_answered(s, HEAD + b'Content-Length: 3000000\r\n\r\n', [PART] + [b'\0' * 2048] * 1500, 0.01)
    s.close()
    assert answer.startswith(b'HTTP/1.1 413') and b'"too_large"' in answer, answer[:300]
    assert sent < 100_000 and time.monotonic() - t < 10, (sent, time.monotonic() - t)
    healthy(server)


def test_oversized_chunked_upload_is_refused_before_it_is_all_read(server):
    "The same without Content-Length (Transfer-Encoding: chunked), 8 MB in 64 KB chunks: the 413 must come before 3 MB."
    s = connect(server)
    pieces = [chunk(PART)] + [chunk(b'\0' * 65536)] * 128 + [chunk(b'\r\n--x--\r\n'), b'0\r\n\r\n']
    sent, answer = send_until_answered(s, HEAD + b'Transfer-Encoding: chunked\r\n\r\n', pieces, 0.005)
    s.close()
    healthy(server)
    assert answer.startswith(b'HTTP/1.1 413'), answer[:300]
    assert sent < 3 * 2**20, f"the server read {sent:,} bytes of a body over its 1 MB limit before answering"


def test_slow_clients_hold_no_worker(server):
    "Twenty clients trickling uploads that never finish: the server answers everyone else meanwhile."
    socks = []
    try:
        for i in range(20):
            s = connect(server); s.sendall(HEAD + b'Content-Length: 50000\r\n\r\n' + PART + PNG[:100]); socks.append(s)
        t = time.monotonic(); healthy(server)
        assert time.monotonic() - t < 15
        for s in socks: s.sendall(PNG[100:200])                             # still sending, still open
        healthy(server)
    finally:
        for s in socks: s.close()
    healthy(server)


def test_burst_larger_than_the_worker_pool(server):
    "64 uploads released at once (the thread pool has 40): all answered, good ones 200 with one class, bad ones 4xx."
    start = threading.Barrier(64)
    def one(i):
        data = PNG if i % 4 else BAD[i % len(BAD)]
        with httpx.Client(timeout=120) as c:
            start.wait(30)
            r = c.post(server + '/predict', files={'file': (f'b{i}.png', data, 'image/png')})
            return i % 4 != 0, r.status_code, r.json()
    t = time.monotonic()
    with cf.ThreadPoolExecutor(64) as ex: res = list(ex.map(one, range(64)))
    assert time.monotonic() - t < 120
    assert [s for _, s, _ in res if s >= 500] == []
    good = [j['prediction'] for ok, s, j in res if ok and s == 200]
    assert len(good) == 48 and len(set(good)) == 1
    assert all(400 <= s < 500 and j['error'] for ok, s, j in res if not ok)
    healthy(server)


def test_serve_refuses_bad_bundle(cli, tmp_path):
    (tmp_path / 'nb').mkdir()
    r = cli('serve', '--model', tmp_path / 'nb', '--port', str(free_port()))
    assert r.returncode == 2 and 'no bundle.json' in r.stderr
