import AmplifyStages
import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// One input: load and check it as a workflow file (and draw its plan), render it as a template
/// of expressions, parse it as JSON, read it as a tracker's issues (bd's ready rules), and read
/// it as each file a session writes. Nothing may crash or hang, whatever the bytes.
func fuzzWorkflow(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

func fuzzOne(_ bytes: [UInt8]) {
    let result = WorkflowChecker.check(bytes: bytes, file: "fuzz.yaml")
    if let workflow = result.workflow {
        _ = PlanRenderer(workflow.plan).render(.mermaid)
        _ = PlanRenderer(workflow.plan).render(.json)
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let (template, _) = Template.parse(text)
    _ = try? ExpressionEvaluator(context: ExpressionContext(roots: ["item": .object(OrderedObject())])).render(template)
    _ = try? JSONParser.parse(bytes: bytes)
    if let issues = try? BeadsReadiness.parseIssues(text) { _ = BeadsReadiness.ready(issues, now: 1_795_521_600_000) }
    fuzzSessionFiles(bytes)
}

/// The session directory the session-file readers are fed from (one per process).
let fuzzSession: SessionFiles = {
    let root = "/tmp/amplify-fuzz-\(getpid())"
    mkdir(root, 0o700)
    mkdir(root + "/sessions", 0o700)
    mkdir(root + "/sessions/s-1", 0o700)
    return SessionFiles(stateDirectory: root, id: "s-1")
}()

func fuzzSessionFiles(_ bytes: [UInt8]) {
    for name in ["state.json", "review.json", "questions.json", "answers.json", "output.log"] {
        let fd = open(fuzzSession.path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
    var warnings: [String] = []
    _ = fuzzSession.decision(warnings: &warnings)
    _ = fuzzSession.questions(warnings: &warnings)
    _ = fuzzSession.answers()
    _ = fuzzSession.agentReport()
}

#if FUZZING
/// libFuzzer's entry for programs that keep their own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
#endif

/// Built with `-DFUZZING -sanitize=fuzzer` (fuzz/run): hands control to libFuzzer. Otherwise it
/// runs the inputs named on its command line, e.g. saved crashes, to check they no longer crash.
@main
struct FuzzMain {
    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            guard let data else { return 0 }
            return fuzzWorkflow(data, size)
        })
        #else
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = try? WorkflowFile.read(path, limit: 1 << 24) else { continue }
            fuzzOne(bytes)
            print("ok: \(path)")
        }
        #endif
    }
}
