import AmplifyWorkflow
import Testing

@Suite("YAML loading")
struct YAMLLoaderTests {
    @Test("keys and values keep their 1-based line and column")
    func positions() throws {
        let root = try #require(YAMLLoader().load("a: 1\nlist:\n  - x\n  - {k: v}\n").root)
        let pairs = try #require(root.mapping)
        #expect(pairs[0].keyLocation == SourcePosition(line: 1, column: 1))
        #expect(pairs[0].value.location == SourcePosition(line: 1, column: 4))
        let list = try #require(pairs[1].value.sequence)
        #expect(list[0].location == SourcePosition(line: 3, column: 5))
        #expect(list[1]["k"]?.location == SourcePosition(line: 4, column: 9))
    }

    @Test("scalars resolve by YAML 1.2's core schema; quoted scalars stay strings", arguments: [
        ("x: 42", Value.int(42)), ("x: -7", .int(-7)), ("x: 0x1F", .int(31)), ("x: 1.5", .double(1.5)),
        ("x: true", .bool(true)), ("x: False", .bool(false)), ("x: yes", .string("yes")), ("x: no", .string("no")),
        ("x: ~", .null), ("x:", .null), ("x: null", .null), ("x: '42'", .string("42")), ("x: \"true\"", .string("true")),
        ("x: !!str 42", .string("42")), ("x: 1h30m", .string("1h30m")), ("x: 08", .int(8)),
    ])
    func scalarResolution(_ yaml: String, _ expected: Value) throws {
        let root = try #require(YAMLLoader().load(yaml).root)
        #expect(root["x"]?.value == expected)
    }

    @Test("a duplicate key is an error at the second one, naming the first")
    func duplicateKeys() {
        let result = YAMLLoader().load("a: 1\nb: 2\na: 3\n")
        #expect(result.diagnostics.map(\.message) == ["duplicate key 'a' (first defined at line 1, column 1)"])
        #expect(result.diagnostics.first?.location == SourcePosition(line: 3, column: 1))
        #expect(result.root?["a"]?.value == .int(1), "the first value is kept")
    }

    @Test("merge keys: explicit keys win, then the first merged mapping; merged keys stand where `<<` is")
    func mergeKeys() throws {
        let yaml = """
        base: &base {a: 1, b: 2}
        more: &more {b: 20, c: 30}
        x:
          <<: [*base, *more]
          a: 100
        """
        let result = YAMLLoader().load(yaml)
        #expect(result.diagnostics.isEmpty)
        let x = try #require(result.root?["x"])
        #expect(x.value == .object(OrderedObject([("b", .int(2)), ("c", .int(30)), ("a", .int(100))])))
    }

    @Test("aliases share their node: a billion laughs is refused quickly, not expanded")
    func aliasBomb() {
        var yaml = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for i in 1...9 {
            yaml += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let result = YAMLLoader().load(yaml)
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message.contains("alias bomb") == true)
    }

    @Test("an alias used a few times is expanded normally")
    func aliasesExpand() throws {
        let root = try #require(YAMLLoader().load("a: &x [1, 2]\nb: *x\nc: [*x, *x]\n").root)
        #expect(root["b"]?.value == .list([.int(1), .int(2)]))
        #expect(root["c"]?.value == .list([.list([.int(1), .int(2)]), .list([.int(1), .int(2)])]))
    }

    @Test("a recursive alias is an error, not a hang")
    func recursiveAlias() {
        let result = YAMLLoader().load("a: &a [1, *a]\n")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message.contains("recursive") == true)
    }

    @Test("invalid UTF-8 is reported with its byte offset and position")
    func invalidUTF8() {
        let bytes: [UInt8] = Array("ok: 1\nname: ".utf8) + [0xC3, 0x28] + Array("\n".utf8)
        let result = YAMLLoader().load(bytes: bytes)
        #expect(result.diagnostics.first?.message == "invalid UTF-8 at byte offset 12; save the file as UTF-8")
        #expect(result.diagnostics.first?.location == SourcePosition(line: 2, column: 7))
    }

    @Test("valid multi-byte UTF-8 passes, and columns count characters")
    func multibyte() throws {
        let root = try #require(YAMLLoader().load("é: ✓\nk: v\n").root)
        #expect(root["é"]?.value == .string("✓"))
        #expect(root["é"]?.location == SourcePosition(line: 1, column: 4))
    }

    @Test("nesting is bounded")
    func deepNesting() {
        let yaml = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        let result = YAMLLoader().load(yaml)
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message.contains("nesting deeper") == true)
    }

    @Test("an empty file, or one with only comments, has no root and no error")
    func empty() {
        #expect(YAMLLoader().load("").root == nil)
        #expect(YAMLLoader().load("# just a comment\n").diagnostics.isEmpty)
    }
}

@Suite("Durations")
struct DurationTests {
    @Test("valid durations", arguments: [
        ("500ms", Int64(500)), ("90s", 90_000), ("15m", 900_000), ("4h", 14_400_000), ("1h30m", 5_400_000), ("2d", 172_800_000), ("1m30s250ms", 90_250),
    ])
    func parses(_ text: String, _ ms: Int64) {
        #expect(WorkflowDuration(parsing: text)?.milliseconds == ms)
        #expect(WorkflowDuration(parsing: WorkflowDuration(milliseconds: ms).description)?.milliseconds == ms)
    }

    @Test("invalid durations", arguments: ["", "5", "4x", "1.5h", "30m1h", "1h1h", "h", "-5s", "5 s", "99999999999999999999d"])
    func rejects(_ text: String) {
        #expect(WorkflowDuration(parsing: text) == nil)
    }

    @Test("retry backoff doubles up to its cap")
    func backoff() {
        let r = RetryPolicy(attempts: 6, backoff: .seconds(10), maxBackoff: .seconds(60))
        #expect((2...6).map { r.delay(beforeAttempt: $0).milliseconds / 1000 } == [10, 20, 40, 60, 60])
    }
}
