import AmplifyWorkflow
#if canImport(Glibc)
import Glibc
#endif

/// One input: load and check it as a workflow file (and draw its plan), render it as a template
/// of expressions, and parse it as JSON. Nothing may crash or hang, whatever the bytes.
func fuzzWorkflow(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

func fuzzOne(_ bytes: [UInt8]) {
    let result = WorkflowChecker.check(bytes: bytes, file: "fuzz.yaml")
    if let workflow = result.workflow {
        _ = Plan(workflow).render(.mermaid)
        _ = Plan(workflow).render(.json)
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let (template, _) = Template.parse(text)
    _ = try? ExpressionEvaluator(context: ExpressionContext(roots: ["item": .object(OrderedObject())])).render(template)
    _ = try? JSONParser.parse(bytes: bytes)
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
