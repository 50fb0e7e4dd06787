import AmplifyWorkflow
import Foundation
import Testing

@Suite("JSON Schema")
struct SchemaTests {
    static let workflows = Repository.files(in: "workflows") + Repository.files(in: "workflows/examples")

    static func schema() throws -> JSONSchemaValidator {
        let loaded = YAMLLoader().load(try Repository.read("schemas/orchestrate.schema.json"))
        let root = try #require(loaded.root)
        return JSONSchemaValidator(root: root.value)
    }

    @Test("schemas/orchestrate.schema.json is what `amplify-run schema` prints")
    func fileMatchesGenerator() throws {
        let file = try Repository.read("schemas/orchestrate.schema.json")
        #expect(file == WorkflowSchema.text, "regenerate with: swift run amplify-run schema > schemas/orchestrate.schema.json")
    }

    @Test("the schema is draft-07 and describes every key")
    func describesEveryKey() throws {
        let schema = WorkflowSchema.schema
        #expect(schema["$schema"] == .string("http://json-schema.org/draft-07/schema#"))
        var undocumented: [String] = []
        func walk(_ v: Value, _ path: String) {
            guard case .object(let o) = v else { return }
            if case .object(let props)? = o["properties"] {
                for (key, sub) in props {
                    if sub["description"] == nil && sub["$ref"] == nil { undocumented.append("\(path).\(key)") }
                }
            }
            for (key, sub) in o {
                walk(sub, "\(path).\(key)")
                if case .list(let items) = sub { for (i, item) in items.enumerated() { walk(item, "\(path).\(key)[\(i)]") } }
            }
        }
        walk(schema, "$")
        // Conditions (`if: {properties: {uses: {const: …}}}`) are not keys a user writes.
        #expect(undocumented.filter { !$0.contains(".if.") }.isEmpty, "keys without a description: \(undocumented)")
    }

    @Test("every workflow under workflows/ validates against the schema and the checker", arguments: workflows)
    func workflowValidates(_ path: String) throws {
        let text = try Repository.read(path)
        #expect(text.hasPrefix("# yaml-language-server: $schema="), "\(path) must begin with the schema comment")
        let result = check(text, file: path)
        #expect(result.diagnostics.filter(\.isError).isEmpty, "\(result.diagnostics)")
        let root = try #require(YAMLLoader().load(text).root)
        let errors = try Self.schema().errors(root.value)
        #expect(errors.isEmpty, "\(errors)")
    }

    @Test("the schema rejects the malformed files a schema can tell", arguments: MalformedFile.all().filter(\.schemaRejects))
    func schemaAgreesOnMalformed(_ file: MalformedFile) throws {
        let root = YAMLLoader().load(bytes: file.bytes).root ?? YAMLNode(.scalar(YAMLScalar("")), at: .start)
        let errors = try Self.schema().errors(root.value)
        #expect(!errors.isEmpty, "the schema accepts \(file.name), which the checker rejects")
        #expect(WorkflowChecker.check(bytes: file.bytes, file: file.name).diagnostics.hasErrors)
    }

    @Test("the schema accepts what the checker accepts, for the keys' own types")
    func schemaAcceptsValidVariants() throws {
        let yaml = """
        version: 1
        x-defaults: &d {timeout: 90s, retry: {attempts: 3, backoff: 1s, max-backoff: 1m}}
        settings: {concurrency: 2, poll: 500ms, max-processes: 8}
        vars: {n: 3, flag: true, word: hi}
        stages:
          a:
            <<: *d
            run: [echo, "${{ vars.word }}"]
            env: {A_B: x}
            outputs: [v]
          b:
            uses: run
            with: {command: "echo hi", working-directory: sub}
            continue-on-error: true
            concurrency: 3
        """
        #expect(errors(yaml).isEmpty, "\(errors(yaml))")
        let root = try #require(YAMLLoader().load(yaml).root)
        #expect(try Self.schema().errors(root.value).isEmpty)
    }
}
