import AmplifyWorkflow
import Foundation
import Testing

/// Every file under `Malformed/` says in its header what its errors must be:
/// `# expect: LINE:COL: words` (one line per expected error; the message must contain the words)
/// and `# schema: rejects` when the JSON Schema must reject it too.
struct MalformedFile: CustomTestStringConvertible, Sendable {
    struct Expectation: Sendable {
        var location: SourcePosition
        var words: String
    }

    var name: String
    var bytes: [UInt8]
    var expectations: [Expectation]
    var schemaRejects: Bool

    var testDescription: String { name }

    static func all() -> [MalformedFile] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: Repository.malformed.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        return names.compactMap { name in
            guard let data = FileManager.default.contents(atPath: Repository.malformed.appendingPathComponent(name).path) else { return nil }
            let bytes = [UInt8](data)
            var expectations: [Expectation] = []
            var schemaRejects = false
            for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
                let text = String(decoding: line, as: UTF8.self)
                guard text.hasPrefix("#") else { break }
                if text.hasPrefix("# schema: rejects") { schemaRejects = true }
                guard text.hasPrefix("# expect: ") else { continue }
                let rest = text.dropFirst("# expect: ".count)
                let parts = rest.split(separator: ":", maxSplits: 2)
                guard parts.count == 3, let l = Int(parts[0]), let c = Int(parts[1]) else { continue }
                expectations.append(Expectation(location: SourcePosition(line: l, column: c), words: parts[2].trimmingCharacters(in: .whitespaces)))
            }
            return MalformedFile(name: name, bytes: bytes, expectations: expectations, schemaRejects: schemaRejects)
        }
    }
}

@Suite("Malformed workflow files")
struct MalformedWorkflowTests {
    @Test("there are at least 40 malformed files, each with an expectation")
    func corpusIsLargeEnough() {
        let files = MalformedFile.all()
        #expect(files.count >= 40)
        for f in files { #expect(!f.expectations.isEmpty, "\(f.name) has no `# expect:` line") }
    }

    @Test("each file gets its located errors, and no other errors", arguments: MalformedFile.all())
    func locatedErrors(_ file: MalformedFile) {
        let result = WorkflowChecker.check(bytes: file.bytes, file: file.name)
        #expect(result.workflow == nil, "a malformed file must not produce a workflow")
        let errors = result.diagnostics.filter(\.isError)
        for e in file.expectations {
            let match = errors.contains { $0.location == e.location && $0.message.lowercased().contains(e.words.lowercased()) }
            #expect(match, "expected an error at \(e.location) containing “\(e.words)”; got:\n\(errors.map(\.description).joined(separator: "\n"))")
        }
        for d in errors {
            #expect(file.expectations.contains { $0.location == d.location }, "unexpected error \(d)")
        }
        for d in result.diagnostics {
            #expect(d.description.hasPrefix("\(file.name):\(d.location.line):\(d.location.column): "))
        }
    }
}
