import AmplifyWorkflow
import Testing

@Suite("Expressions")
struct ExpressionTests {
    static let context: ExpressionContext = {
        var item = OrderedObject()
        item["id"] = .string("shop-7")
        item["title"] = .string("Add a health endpoint")
        item["priority"] = .int(1)
        item["labels"] = .list([.string("api"), .string("backend")])
        item["metadata"] = .object(OrderedObject([("estimate", .string("small"))]))
        var outputs = OrderedObject()
        outputs["items"] = .list([.string("a"), .string("b")])
        outputs["count"] = .int(2)
        let stages = OrderedObject([("ready", .object(OrderedObject([("outputs", .object(outputs))])))])
        return ExpressionContext(roots: [
            "item": .object(item),
            "stages": .object(stages),
            "vars": .object(OrderedObject([("agent", .string("claude"))])),
            "env": .object(OrderedObject([("HOME", .string("/root"))])),
        ])
    }()

    func eval(_ text: String, _ context: ExpressionContext = ExpressionTests.context) throws -> Value {
        let (template, errors) = Template.parse(text)
        #expect(errors.isEmpty, "\(errors)")
        return try ExpressionEvaluator(context: context).render(template)
    }

    @Test("evaluation", arguments: [
        ("${{ item.id }}", Value.string("shop-7")),
        ("${{ item.priority }}", .int(1)),
        ("${{ item.labels }}", .list([.string("api"), .string("backend")])),
        ("${{ item.labels[1] }}", .string("backend")),
        ("${{ item['title'] }}", .string("Add a health endpoint")),
        ("${{ item.metadata.estimate }}", .string("small")),
        ("${{ item.missing }}", .null),
        ("${{ item.missing.deeper }}", .null),
        ("[${{ item.missing }}]", .string("[]")),
        ("${{ stages.ready.outputs.count }}", .int(2)),
        ("n=${{ stages.ready.outputs.count }}", .string("n=2")),
        ("${{ join(stages.ready.outputs.items, ', ') }}", .string("a, b")),
        ("${{ join(stages.ready.outputs.items) }}", .string("a,b")),
        ("${{ join(item.missing, ',') }}", .string("")),
        ("${{ contains(item.labels, 'API') }}", .bool(true)),
        ("${{ contains(item.title, 'health') }}", .bool(true)),
        ("${{ contains(item.missing, 'x') }}", .bool(false)),
        ("${{ startsWith(item.id, 'shop-') }}", .bool(true)),
        ("${{ item.priority == 1 }}", .bool(true)),
        ("${{ item.priority == '1' }}", .bool(true)),
        ("${{ item.id == 'SHOP-7' }}", .bool(true)),
        ("${{ item.priority < 2 && item.id != 'x' }}", .bool(true)),
        ("${{ item.missing || 'default' }}", .string("default")),
        ("${{ item.id && vars.agent }}", .string("claude")),
        ("${{ !item.missing }}", .bool(true)),
        ("${{ null == item.missing }}", .bool(true)),
        ("${{ (1 < 2) == true }}", .bool(true)),
        ("${{ -1.5 < 0 }}", .bool(true)),
        ("${{ 'it''s' }}", .string("it's")),
        ("${{ env.NOT_SET }}", .null),
        ("${{ toJSON(item.labels) }}", .string("[\n  \"api\",\n  \"backend\"\n]")),
        ("a ${{ vars.agent }} b ${{ item.priority }} c", .string("a claude b 1 c")),
        ("no expressions", .string("no expressions")),
    ])
    func evaluates(_ text: String, _ expected: Value) throws {
        #expect(try eval(text) == expected)
    }

    @Test("a path into a stage or variable that does not exist is an error", arguments: [
        "${{ vars.nope }}", "${{ stages.nope.outputs.x }}", "${{ session.id }}",
    ])
    func strictPaths(_ text: String) {
        #expect(throws: EvaluationError.self) { try eval(text) }
    }

    @Test("status functions follow what the instance's needs did")
    func statusFunctions() throws {
        var context = ExpressionTests.context
        #expect(try eval("${{ success() }}", context) == .bool(true))
        #expect(try eval("${{ failure() }}", context) == .bool(false))
        context.dependencyFailed = true
        #expect(try eval("${{ success() }}", context) == .bool(false))
        #expect(try eval("${{ failure() }}", context) == .bool(true))
        #expect(try eval("${{ always() }}", context) == .bool(true))
        context.runCancelled = true
        #expect(try eval("${{ cancelled() }}", context) == .bool(true))
    }

    @Test("operator precedence: && binds tighter than ||, comparisons tighter than &&")
    func precedence() throws {
        let e = try ExpressionParser.parse("a || b && c == d")
        guard case .binary(.or, .path("a", [], _), .binary(.and, .path("b", [], _), .binary(.equal, _, _, _), _), _) = e else {
            Issue.record("parsed as \(e)")
            return
        }
    }

    @Test("syntax errors carry the offset of the bad token", arguments: [
        ("a ==", 4, "ends too early"), ("a = b", 2, "'=='"), ("\"x\"", 0, "single quotes"), ("a b", 2, "unexpected 'b'"),
        ("f(a,", 4, "ends too early"), ("'open", 0, "not closed"), ("a & b", 2, "'&&'"), ("", 0, "empty"), ("a.", 2, "expected a name"),
    ])
    func syntaxErrors(_ text: String, _ offset: Int, _ words: String) {
        do {
            _ = try ExpressionParser.parse(text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.offset == offset)
            #expect(error.message.contains(words), "\(error.message)")
        }
    }

    @Test("deeply nested expressions are refused, not a stack overflow")
    func nesting() {
        #expect(throws: ExpressionSyntaxError.self) { try ExpressionParser.parse(String(repeating: "(", count: 10_000) + "1" + String(repeating: ")", count: 10_000)) }
        #expect(throws: ExpressionSyntaxError.self) { try ExpressionParser.parse(String(repeating: "!", count: 10_000) + "1") }
    }

    @Test("a template that is exactly one expression keeps the value's type")
    func singleExpression() {
        #expect(Template.parse("${{ item.labels }}").template.singleExpression != nil)
        #expect(Template.parse("  ${{ item.labels }} ").template.singleExpression != nil)
        #expect(Template.parse("x${{ item.labels }}").template.singleExpression == nil)
        #expect(Template.parse("${{ a }}${{ b }}").template.singleExpression == nil)
    }

    @Test("`}}` inside a string literal does not end the expression")
    func bracesInString() throws {
        #expect(try eval("${{ '}}' }}") == .string("}}"))
    }
}
