/// The JSON Schema (draft-07) of the workflow file, generated from `WorkflowLanguage` so that
/// editors (yaml-language-server) and the checker describe the same language.
/// `schemas/orchestrate.schema.json` is this text; a test keeps them equal.
public enum WorkflowSchema {
    /// The schema as printed by `amplify-run schema`.
    public static var text: String { schema.prettyJSON + "\n" }

    public static var schema: Value {
        var root = obj([
            ("$schema", .string("http://json-schema.org/draft-07/schema#")),
            ("title", .string("amplify-run workflow")),
            ("description", .string("A workflow for amplify-run: stages compiled into a DAG and run as a checkpointed state machine. Reference: README.md of amplify-run.")),
            ("type", .string("object")),
        ])
        var properties: [(String, Value)] = []
        for spec in WorkflowLanguage.topLevelKeys {
            switch spec.name {
            case "version":
                properties.append((spec.name, obj([("description", .string(spec.description)), ("const", .int(WorkflowLanguage.supportedVersion))])))
            case "settings":
                properties.append((spec.name, mapping(WorkflowLanguage.settingsKeys, description: spec.description, expressions: false)))
            case "vars":
                properties.append((spec.name, obj([
                    ("description", .string(spec.description)),
                    ("type", .string("object")),
                    ("propertyNames", obj([("pattern", .string(namePattern))])),
                    ("additionalProperties", obj([("type", .list([.string("string"), .string("number"), .string("boolean")]))])),
                ])))
            case "agents":
                properties.append((spec.name, obj([
                    ("description", .string(spec.description)),
                    ("type", .string("object")),
                    ("propertyNames", obj([("pattern", .string(namePattern)), ("not", obj([("enum", .list(AgentProfile.builtIn.keys.sorted().map(Value.string)))]))])),
                    ("additionalProperties", ref("agent-profile")),
                ])))
            case "stages":
                properties.append((spec.name, obj([
                    ("description", .string(spec.description)),
                    ("type", .string("object")),
                    ("minProperties", .int(1)),
                    ("propertyNames", obj([("pattern", .string(namePattern))])),
                    ("additionalProperties", ref("stage")),
                ])))
            default:
                properties.append((spec.name, type(spec.type, description: spec.description, expressions: false)))
            }
        }
        root["properties"] = obj(properties)
        root["patternProperties"] = obj([("^x-", obj([("description", .string("An extension field, ignored by amplify-run: a place for YAML anchors used with merge keys (`<<: *defaults`)."))]))])
        root["required"] = .list(WorkflowLanguage.topLevelKeys.filter(\.required).map { .string($0.name) })
        root["additionalProperties"] = .bool(false)

        // A profile's rules are mappings of their own.
        var profile = mapping(WorkflowLanguage.agentProfileKeys, description: "An agent profile: how a CLI is started and resumed, and how its JSON output is read (SPEC §11).", expressions: false)
        if case .object(var p) = profile, case .object(var props)? = p["properties"] {
            for rule in AgentProfile.ruleKeys {
                if case .string(let d)? = props[rule]?["description"] { props[rule] = obj([("description", .string(d)), ("$ref", .string("#/definitions/output-rule"))]) }
            }
            p["properties"] = .object(props)
            profile = .object(p)
        }
        var definitions: [(String, Value)] = [
            ("agent-profile", profile),
            ("output-rule", mapping(WorkflowLanguage.outputRuleKeys, description: "Picks the JSON lines whose `type` is this and reads `field`.", expressions: false)),
            ("duration", obj([
                ("description", .string("A duration: 500ms, 90s, 15m, 4h, 1h30m (units d, h, m, s, ms, largest first).")),
                ("type", .string("string")),
                ("pattern", .string("^(?=[0-9])([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$")),
            ])),
            ("expression", obj([
                ("description", .string("One `${{ … }}` expression, evaluated when the stage runs.")),
                ("type", .string("string")),
                ("pattern", .string("^\\s*\\$\\{\\{[\\s\\S]*\\}\\}\\s*$")),
            ])),
            ("command", obj([
                ("description", .string("A string run by /bin/sh -c (each `${{ }}` becomes a quoted environment-variable reference), or an argv list.")),
                ("oneOf", .list([
                    obj([("type", .string("string")), ("minLength", .int(1))]),
                    obj([("type", .string("array")), ("minItems", .int(1)), ("items", obj([("type", .string("string"))]))]),
                ])),
            ])),
            ("stage", stageSchema),
            ("notify-target", notifyTargetSchema),
        ]
        for kind in StageKind.allCases {
            definitions.append(("with-\(kind.rawValue)", mapping(kind.parameters, description: "Parameters of \(kind.rawValue): \(kind.summary)", expressions: true)))
        }
        root["definitions"] = obj(definitions)
        return root
    }

    /// A target of `settings.notify`: its events, and a webhook or a command (one of them).
    private static var notifyTargetSchema: Value {
        var target = mapping(WorkflowLanguage.notifyTargetKeys, description: "Where a person is told of the run's events: an HTTP POST of the event's JSON (`webhook`), or a command with it on stdin.", expressions: false)
        guard case .object(var t) = target, case .object(var props)? = t["properties"], case .string(let on)? = props["on"]?["description"] else { return target }
        let events = obj([("enum", .list(NotifyEvent.allCases.map { .string($0.rawValue) }))])
        props["on"] = obj([("description", .string(on)), ("oneOf", .list([events, obj([("type", .string("array")), ("minItems", .int(1)), ("items", events)])]))])
        t["properties"] = .object(props)
        t["oneOf"] = .list([obj([("required", .list([.string("webhook")]))]), obj([("required", .list([.string("command")]))])])
        target = .object(t)
        return target
    }

    private static let namePattern = "^[A-Za-z_][A-Za-z0-9_-]*$"

    private static var stageSchema: Value {
        var properties: [(String, Value)] = []
        for spec in WorkflowLanguage.stageKeys {
            switch spec.name {
            case "uses":
                properties.append((spec.name, obj([
                    ("description", .string(spec.description + " " + StageKind.allCases.map { "`\($0.rawValue)`: \($0.summary)" }.joined(separator: " "))),
                    ("enum", .list(StageKind.allCases.map { .string($0.rawValue) })),
                ])))
            case "with":
                properties.append((spec.name, obj([("description", .string(spec.description)), ("type", .string("object"))])))
            case "retry":
                properties.append((spec.name, obj([
                    ("description", .string(spec.description)),
                    ("oneOf", .list([
                        obj([("type", .string("integer")), ("minimum", .int(1))]),
                        mapping(WorkflowLanguage.retryKeys, description: "Attempts and backoff.", expressions: false),
                    ])),
                ])))
            default:
                properties.append((spec.name, type(spec.type, description: spec.description, expressions: false)))
            }
        }
        var conditions: [Value] = []
        for kind in StageKind.allCases {
            conditions.append(obj([
                ("if", obj([("required", .list([.string("uses")])), ("properties", obj([("uses", obj([("const", .string(kind.rawValue))]))]))])),
                ("then", obj([("properties", obj([("with", ref("with-\(kind.rawValue)"))]))])),
            ]))
        }
        conditions.append(obj([
            ("if", obj([("required", .list([.string("run")]))])),
            ("then", obj([("properties", obj([("with", ref("with-run"))]))])),
        ]))
        return obj([
            ("description", .string("A stage: `uses: <kind>` or `run: <command>`.")),
            ("type", .string("object")),
            ("properties", obj(properties)),
            ("additionalProperties", .bool(false)),
            ("oneOf", .list([obj([("required", .list([.string("uses")]))]), obj([("required", .list([.string("run")]))])])),
            ("allOf", .list(conditions)),
        ])
    }

    private static func mapping(_ keys: [KeySpec], description: String, expressions: Bool) -> Value {
        var o = OrderedObject()
        o["description"] = .string(description)
        o["type"] = .string("object")
        o["properties"] = obj(keys.map { ($0.name, type($0.type, description: $0.description, default: $0.defaultValue, expressions: expressions)) })
        let required = keys.filter(\.required).map { Value.string($0.name) }
        if !required.isEmpty { o["required"] = .list(required) }
        o["additionalProperties"] = .bool(false)
        return .object(o)
    }

    private static func type(_ type: ValueType, description: String, default defaultValue: Value? = nil, expressions: Bool) -> Value {
        var o = OrderedObject()
        o["description"] = .string(description)
        if let defaultValue { o["default"] = defaultValue }
        let strings = obj([("type", .string("array")), ("items", obj([("type", .string("string"))]))])
        func orExpression(_ schema: Value) -> Value {
            expressions ? obj([("anyOf", .list([schema, ref("expression")]))]) : schema
        }
        var body: Value
        switch type {
        case .string: body = obj([("type", .list([.string("string"), .string("number"), .string("boolean")]))])
        case .integer(let minimum): body = orExpression(obj([("type", .string("integer")), ("minimum", .int(minimum))]))
        case .boolean: body = orExpression(obj([("type", .string("boolean"))]))
        case .duration: body = ref("duration")
        case .choice(let words): body = orExpression(obj([("enum", .list(words.map(Value.string)))]))
        case .stringOrList: body = obj([("oneOf", .list([obj([("type", .string("string"))]), strings]))])
        case .argv: body = obj([("type", .string("array")), ("minItems", .int(1)), ("items", obj([("type", .list([.string("string"), .string("number"), .string("boolean")]))]))])
        case .command: body = ref("command")
        case .commands:
            // A string is one shell command; a list holds commands (each a string or an argv).
            body = obj([("oneOf", .list([obj([("type", .string("string")), ("minLength", .int(1))]), obj([("type", .string("array")), ("items", ref("command"))])]))])
        case .stringMap: body = obj([("type", .string("object")), ("propertyNames", obj([("pattern", .string("^[A-Za-z_][A-Za-z0-9_]*$"))])), ("additionalProperties", obj([("type", .list([.string("string"), .string("number"), .string("boolean")]))]))])
        case .listExpression: body = obj([("oneOf", .list([obj([("type", .string("array"))]), ref("expression")]))])
        case .condition: body = obj([("type", .list([.string("string"), .string("boolean")]))])
        case .notify: body = obj([("type", .string("array")), ("items", ref("notify-target"))])
        case .slurm: body = obj([("type", .string("object")), ("additionalProperties", .bool(false)),
                                 ("properties", obj(SlurmOptions.keys.map { ($0.name, Self.type($0.type, description: $0.description, expressions: false)) }))])
        case .retry, .any: body = obj([])
        case .names: body = strings
        case .agent: body = obj([("oneOf", .list([obj([("type", .string("string"))]), obj([("type", .string("array")), ("minItems", .int(1)), ("items", obj([("type", .list([.string("string"), .string("number"), .string("boolean")]))]))])]))])
        case .budget: body = obj([("type", .string("object")), ("additionalProperties", .bool(false)), ("properties", obj([
            ("cost", obj([("description", .string("Dollars; passed to the CLI or enforced by the runner.")), ("type", .string("number")), ("exclusiveMinimum", .int(0))])),
            ("turns", obj([("description", .string("Turns of the agent (per item only).")), ("type", .string("integer")), ("minimum", .int(1))])),
        ]))])
        }
        if case .object(let b) = body { for (k, v) in b { o[k] = v } }
        return .object(o)
    }

    private static func ref(_ name: String) -> Value {
        obj([("$ref", .string("#/definitions/\(name)"))])
    }

    private static func obj(_ pairs: [(String, Value)]) -> Value {
        .object(OrderedObject(pairs))
    }
}
