#!/usr/bin/env python3
"""The dashboard in a real browser (SPEC §9): headless Chromium driven by WebDriver (selenium).

A sandbox repository with a Beads issues file and scripts that play the agent, a real runner
(`amplify-run wf.yaml`) and a real server (`amplify-run serve --listen 127.0.0.1:0`). Checks that
the run appears and updates live; a question answered on the page reaches the agent; approve
and reject on the page decide; a decision made in the terminal shows on the page within a second.
Screenshots at 1280×800 and at phone width are kept in ARTIFACTS (default .build/artifacts).

usage: Tests/Browser/dashboard.py [path/to/amplify-run]     exit 0 when every check holds
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build/debug/amplify-run"))
ARTIFACTS = os.path.abspath(os.environ.get("ARTIFACTS", os.path.join(ROOT, ".build/artifacts")))
os.makedirs(ARTIFACTS, exist_ok=True)

failures = []
def check(ok, what):
    print(("ok: " if ok else "FAILED: ") + what, flush=True)
    if not ok:
        failures.append(what)

WORKFLOW = """version: 1
settings: {base: main, poll: 200ms, concurrency: 5}
stages:
  ready: {uses: query-ready, with: {source: file, path: .beads/issues.jsonl}}
  dispatch:
    uses: dispatch
    for-each: ${{ stages.ready.outputs.items }}
    with: {agent: [agent, "${{ prompt }}"], prompt: "Item ${{ item.id }}: ${{ item.title }}"}
  approved:
    uses: wait-approved
    timeout: 5m
    with: {resume: [agent, --resume, "${{ answer }}"]}
  merge: {uses: merge}
  close: {uses: close}
  cleanup: {uses: cleanup, if: "${{ always() }}"}
"""

# The agent: what each item does is in its title. It reports through the session files the way
# the default workflow's prompt asks (state.json's status, questions.json, summary.md).
AGENT = r"""#!/bin/sh
echo "$AMPLIFY_ITEM_ID $*" >> "$AGENT_LOG"
dir="$AMPLIFY_SESSION_DIR"
status() { sed 's/"status": *"running"/"status": "'"$1"'"/' "$dir/state.json" > "$dir/s.tmp" && mv "$dir/s.tmp" "$dir/state.json"; }
work() { echo "$AMPLIFY_ITEM_ID: $1" > "$AMPLIFY_ITEM_ID.txt"; git add . && git commit -qm "$AMPLIFY_ITEM_ID: $1"; }
echo '{"type":"system","subtype":"init","session_id":"s-'"$AMPLIFY_ITEM_ID"'"}'
case "$AMPLIFY_ITEM_ID" in
  ask)
    if [ "${1:-}" = "--resume" ]; then work "answer $2"; echo "resumed with: $2"; status approved; exit 0; fi
    echo '[{"id":"q1","question":"Which colour should the button be?","options":["Green","Blue"],"blocking":true}]' > "$dir/q.tmp" && mv "$dir/q.tmp" "$dir/questions.json"
    echo "asked q1"; exit 0 ;;
  review|reject|terminal)
    work "ready for review"; echo "Changed $AMPLIFY_ITEM_ID.txt" > "$dir/summary.md"; status completed; exit 0 ;;
  self)
    # Works until the page has shown it running ($AGENT_LOG.go; at most 60 s): a browser slow to
    # start on a loaded machine must not miss the running state.
    i=0; while [ ! -e "$AGENT_LOG.go" ] && [ $i -lt 120 ]; do echo "working $i"; sleep 0.5; i=$((i+1)); done
    work "done"; status approved; echo '{"type":"result","is_error":false,"num_turns":3,"total_cost_usd":0.42,"result":"done"}' ;;
esac
"""

box = tempfile.mkdtemp(prefix="amplify-browser-")
repo = os.path.join(box, "repo")
os.makedirs(os.path.join(repo, ".beads"))
os.makedirs(os.path.join(box, "bin"))
with open(os.path.join(box, "bin", "agent"), "w") as f:
    f.write(AGENT)
os.chmod(os.path.join(box, "bin", "agent"), 0o755)
with open(os.path.join(repo, "wf.yaml"), "w") as f:
    f.write(WORKFLOW)
items = [("ask", "Ask which colour"), ("review", "Wait for a review"), ("reject", "Be rejected on the page"),
         ("terminal", "Be approved in the terminal"), ("self", "Approve itself")]
with open(os.path.join(repo, ".beads", "issues.jsonl"), "w") as f:
    for i, (id, title) in enumerate(items):
        f.write(json.dumps({"id": id, "title": title, "status": "open", "priority": i, "issue_type": "task", "created_at": "2026-11-20T09:00:00Z"}) + "\n")
env = dict(os.environ, PATH=os.path.join(box, "bin") + ":/usr/bin:/bin", AGENT_LOG=os.path.join(box, "agent-log"),
           GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com", HOME=box)
def git(*args):
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
git("init", "-q", "-b", "main"); git("add", "wf.yaml"); git("commit", "-qm", "init")
with open(os.path.join(repo, ".git", "info", "exclude"), "a") as f:
    f.write("/.beads/\n")

def amplify(*args):
    return subprocess.run([BIN, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60)

runner = subprocess.Popen([BIN, "wf.yaml"], cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
line = server.stdout.readline().strip()
check(line.startswith("serving http://127.0.0.1:"), f"serve's first line names its address ({line!r})")
url = line.split(" ", 1)[1] if " " in line else ""

options = Options()
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800"]:
    options.add_argument(a)
options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
driver.set_window_size(1280, 800)

def wait_for(what, predicate, seconds=20.0):
    end = time.time() + seconds
    while time.time() < end:
        try:
            v = predicate()
            if v:
                print("ok: " + what, flush=True)
                return v
        except Exception:
            pass
        time.sleep(0.05)
    check(False, what + " (timed out)")
    return None

def click(css, what):
    """Clicks the element `css` names, found afresh each try: the page redraws as events come."""
    def attempt():
        driver.find_element(By.CSS_SELECTOR, css).click()
        return True
    return wait_for(what, attempt, 10)

def outcome(item):
    rows = driver.find_elements(By.CSS_SELECTOR, f'tr[data-item="{item}"]')
    return rows[0].get_attribute("data-outcome") if rows else None

try:
    driver.get(url)
    wait_for("the run's five items appear", lambda: len(driver.find_elements(By.CSS_SELECTOR, "tr[data-item]")) == 5)
    check(driver.find_elements(By.CSS_SELECTOR, "#dag svg g[data-stage]"), "the DAG is drawn (SVG from the plan)")
    # Live: the self-approving item goes from running to merged without a reload.
    wait_for("an item is shown running", lambda: outcome("self") == "running", 10)
    open(env["AGENT_LOG"] + ".go", "w").close()
    wait_for("it becomes merged on the page, live", lambda: outcome("self") == "merged", 20)
    # A question, answered on the page, reaches the agent.
    form = wait_for("the question appears with an answer form", lambda: driver.find_element(By.CSS_SELECTOR, 'form[data-question$="/q1"]'))
    driver.save_screenshot(os.path.join(ARTIFACTS, "dashboard-1280x800-question.png"))
    if form:
        click('form[data-question$="/q1"] button[data-answer="Blue"]', "the answer's option button can be clicked")
        wait_for("the agent is resumed with the page's answer", lambda: "ask --resume Blue" in open(env["AGENT_LOG"]).read(), 20)
        wait_for("the answered item is merged", lambda: outcome("ask") == "merged", 20)
    # Approve on the page.
    wait_for("the reviewed item waits for a person", lambda: outcome("review") == "waiting for you", 20)
    click('tr[data-item="review"]', "the item's row opens its session")
    button = wait_for("its session shows an Approve button", lambda: driver.find_element(By.CSS_SELECTOR, '#session button[data-action="approve"]:not([disabled])'))
    click('.tabs button[data-tab="diff"]', "the Diff tab")
    wait_for("its diff can be read", lambda: "+review: ready for review" in driver.find_element(By.ID, "view").text, 10)
    driver.save_screenshot(os.path.join(ARTIFACTS, "dashboard-1280x800-session-diff.png"))
    if button:
        click('#session button[data-action="approve"]', "Approve")
        wait_for("approved on the page: merged", lambda: outcome("review") == "merged", 20)
    # Reject on the page.
    wait_for("the second reviewed item waits", lambda: outcome("reject") == "waiting for you", 20)
    click('tr[data-item="reject"]', "the second item's row")
    wait_for("its Reject button", lambda: driver.find_element(By.CSS_SELECTOR, '#session button[data-action="reject"]:not([disabled])'))
    wait_for("a reason can be typed", lambda: driver.find_element(By.ID, "decision-text").send_keys("Not this way") or True, 10)
    click('#session button[data-action="reject"]', "Reject")
    wait_for("rejected on the page", lambda: outcome("reject") == "rejected", 20)
    # Read through wait_for: the row may be drawn again between finding it and reading it (stale).
    wait_for("the reason given on the page is the item's reason",
             lambda: "Not this way" in driver.find_element(By.CSS_SELECTOR, 'tr[data-detail="reject"]').text, 10)
    # A decision in the terminal shows on the page within a second.
    wait_for("the terminal's item waits", lambda: outcome("terminal") == "waiting for you", 20)
    status = json.loads(amplify("status", "--json").stdout)
    session = next(s["session"] for s in status["sessions"] if s["item"] == "terminal")
    r = amplify("approve", session)
    check(r.returncode == 0, f"amplify-run approve in the terminal ({r.stderr.strip()})")
    t0 = time.time()
    wait_for("the terminal's decision shows on the page", lambda: outcome("terminal") in ("merged", "running"), 5)
    shown = time.time() - t0
    check(shown < 1.0, f"…within a second ({shown:.2f} s)")
    wait_for("the run finishes and says so", lambda: "finished" in driver.find_element(By.ID, "run-state").text, 30)
    driver.save_screenshot(os.path.join(ARTIFACTS, "dashboard-1280x800-finished.png"))
    driver.set_window_size(390, 844)
    time.sleep(0.3)
    wide = driver.execute_script("""const w = document.documentElement.clientWidth; return [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest('#dag')).slice(0, 3).map(e => e.tagName + '#' + e.id + '.' + e.className)""")
    check(driver.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1"), f"at phone width nothing spills sideways {wide}")
    driver.save_screenshot(os.path.join(ARTIFACTS, "dashboard-390x844-phone.png"))
finally:
    driver.quit()
    server.send_signal(signal.SIGTERM)
    try:
        code = server.wait(10)
        check(code == 0, f"serve stops cleanly on SIGTERM (exit {code})")
    except subprocess.TimeoutExpired:
        server.kill(); check(False, "serve stops on SIGTERM")
    try:
        runner.wait(60)
    except subprocess.TimeoutExpired:
        runner.kill()
    if failures:
        print(f"dashboard: {len(failures)} check(s) failed; sandbox kept in {box}; screenshots in {ARTIFACTS}")
    else:
        shutil.rmtree(box, ignore_errors=True)
        print(f"dashboard: ok; screenshots in {ARTIFACTS}")
sys.exit(1 if failures else 0)
