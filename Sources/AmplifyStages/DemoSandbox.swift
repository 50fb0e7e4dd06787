import AmplifyEngine
import AmplifyWorkflow
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The sandbox `amplify-run demo` runs in: a git repository with a Beads issues file of five
/// items and a script that plays the agent. Only the agent is pretend; the engine is the real one.
public enum DemoSandbox {
    /// The agent: reads its prompt, commits a real change on its branch, and reports through
    /// the session files the way the default workflow's prompt asks an agent to.
    public static let agentScript = #"""
#!/bin/sh
# amplify-run's demo agent: plays an AI coding agent for `amplify-run demo`.
# Called as the claude profile calls Claude Code:  claude -p … --session-id ID -- PROMPT
# or, resumed with an answer:                       claude -p … --resume ID -- ANSWER
set -eu
answer="" resuming="" last=""
while [ $# -gt 0 ]; do
  case "$1" in
    --resume) resuming=1 ;;
    --) shift; last="${1:-}"; break ;;
  esac
  shift
done
if [ -n "$resuming" ]; then answer="$last"; fi
dir="$AMPLIFY_SESSION_DIR"
prompt="$AMPLIFY_PROMPT_FILE"
say() { printf '{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"%s"}]},"session_id":"demo-%s"}\n' "$1" "$AMPLIFY_ITEM_ID"; }
printf '{"type":"system","subtype":"init","session_id":"demo-%s","cwd":"%s"}\n' "$AMPLIFY_ITEM_ID" "$PWD"
# Set state.json's top-level "status" (the first one in the file), by rename as the prompt asks.
set_status() {
  sed '0,/"status": *"[a-z_]*"/s//"status": "'"$1"'"/' "$dir/state.json" > "$dir/state.json.tmp"
  mv "$dir/state.json.tmp" "$dir/state.json"
}
sleep 1
if grep -q '\[demo: ask\]' "$prompt" && [ -z "$answer" ]; then
  say "Which language should the greeting use? Asking, then stopping until answered."
  cat > "$dir/questions.json.tmp" <<'JSON'
[{"id": "q1", "question": "Which language should the greeting use?", "options": ["English", "French"], "blocking": true}]
JSON
  mv "$dir/questions.json.tmp" "$dir/questions.json"
  exit 0
fi
mkdir -p notes
{
  echo "# $AMPLIFY_ITEM_ID"
  echo
  sed -n 's/^Item [^:]*: //p' "$prompt" | head -n 1
  [ -n "$answer" ] && echo "Answer given: $answer"
  echo "Done on branch $AMPLIFY_BRANCH by the demo agent."
} > "notes/$AMPLIFY_ITEM_ID.md"
git add "notes/$AMPLIFY_ITEM_ID.md"
git commit -q -m "$AMPLIFY_ITEM_ID: add notes/$AMPLIFY_ITEM_ID.md"
say "Committed notes/$AMPLIFY_ITEM_ID.md."
if grep -q '\[demo: reject\]' "$prompt"; then
  echo "Not doing this: the item asks for something out of scope." > "$dir/summary.md"
  set_status rejected
else
  echo "Added notes/$AMPLIFY_ITEM_ID.md; checked it with cat." > "$dir/summary.md"
  set_status approved
fi
printf '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"done","session_id":"demo-%s"}\n' "$AMPLIFY_ITEM_ID"
"""#

    /// Five items: one blocked by another, one the agent rejects, one that asks a question.
    public static let issues = [
        #"{"id":"demo-1","title":"Add a greeting","description":"Write a greeting note.","status":"open","priority":1,"issue_type":"task","created_at":"2026-11-20T09:00:00Z","dependencies":[]}"#,
        #"{"id":"demo-2","title":"Document the greeting","description":"Needs the greeting first.","status":"open","priority":1,"issue_type":"task","created_at":"2026-11-20T09:01:00Z","dependencies":[{"issue_id":"demo-2","depends_on_id":"demo-1","type":"blocks"}]}"#,
        #"{"id":"demo-3","title":"Rewrite everything in COBOL","description":"[demo: reject] The agent will decline this one.","status":"open","priority":2,"issue_type":"task","created_at":"2026-11-20T09:02:00Z","dependencies":[]}"#,
        #"{"id":"demo-4","title":"Pick the greeting's language","description":"[demo: ask] The agent asks which language; the demo answers.","status":"open","priority":2,"issue_type":"task","created_at":"2026-11-20T09:03:00Z","dependencies":[]}"#,
        #"{"id":"demo-5","title":"Add a farewell","description":"Write a farewell note.","status":"open","priority":3,"issue_type":"task","created_at":"2026-11-20T09:04:00Z","dependencies":[]}"#,
    ].joined(separator: "\n") + "\n"

    /// The embedded default workflow, reading the sandbox's issues file instead of asking bd.
    public static var workflow: String {
        EmbeddedWorkflows.defaultWorkflow.replacing("source: bd,", with: "source: file, path: .beads/issues.jsonl,")
    }
}
