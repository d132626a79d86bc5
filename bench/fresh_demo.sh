# A newcomer's first ten minutes, timed: a fresh clone, `make demo` with an empty feature cache, until the dashboard serves; prints the demo's own report. Run: bash bench/fresh_demo.sh > runs/fresh_demo.log (bench/results/demo.json is written from that log)
rm -rf /tmp/fresh /tmp/fresh-cache; git clone -q "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" /tmp/fresh; cd /tmp/fresh
export DEFECT_NB_CACHE=/tmp/fresh-cache
t0=$(date +%s); echo "start $(date +%T)"
( make demo > /tmp/fresh/make_demo.log 2>&1 & )
while ! grep -q "dashboard on http" /tmp/fresh/make_demo.log 2>/dev/null; do
  sleep 2; if ! pgrep -f "make demo" >/dev/null && ! grep -q "dashboard on" /tmp/fresh/make_demo.log; then echo FAILED; tail -20 /tmp/fresh/make_demo.log; break; fi
done
t1=$(date +%s); echo "dashboard serving after $((t1-t0)) s ($(date +%T))"
stamp=$(stat -c %Y /tmp/fresh/.venv/.installed-* 2>/dev/null); echo "setup took $((stamp-t0)) s"
sleep 20; curl -s -o /dev/null -w "dashboard http %{http_code}\n" http://127.0.0.1:8866/
pkill -f "defect-nb dashboard"; pkill -f voila; pkill -f "make demo"
grep -E "^\[|demo finished|classifier:|threshold|U-Net:|note:" /tmp/fresh/make_demo.log | tr '\r' '\n' | grep -v "%|" | tail -40
