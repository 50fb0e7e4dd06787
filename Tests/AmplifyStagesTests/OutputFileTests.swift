import AmplifyStages
import Testing

/// `$AMPLIFY_OUTPUT` as commands write it, with either line ending.
@Suite("output file") struct OutputFileTests {
    @Test("key=value lines and key<<DELIM blocks, with \\n or \\r\\n line endings", arguments: ["\n", "\r\n"])
    func lineEndings(_ eol: String) {
        let text = ["version=1.2", "notes<<EOF", "first", "second", "EOF", "empty="].joined(separator: eol) + eol
        let out = OutputFile.parse(text)
        #expect(out["version"] == "1.2")
        #expect(out["notes"] == "first\nsecond")
        #expect(out["empty"] == "")
        #expect(out.count == 3)
    }
}
