// `settings.notify`: the targets a person is told through, each checked where it is written.

extension WorkflowChecker {
    /// The list of targets; each one's problems are reported at its own keys and values.
    mutating func notifyTargets(_ node: YAMLNode) -> [NotifyTarget] {
        guard let items = node.sequence else {
            error(node.location, "`settings.notify` must be \(ValueType.notify.expectation), not \(describe(node))")
            return []
        }
        var targets: [NotifyTarget] = []
        for (i, item) in items.enumerated() {
            if let target = notifyTarget(item, key: "settings.notify[\(i)]") { targets.append(target) }
        }
        return targets
    }

    private mutating func notifyTarget(_ node: YAMLNode, key: String) -> NotifyTarget? {
        guard let pairs = node.mapping else {
            error(node.location, "`\(key)` must be a target, {on: [events], webhook: URL} or {on: [events], command: [argv]}, not \(describe(node))")
            return nil
        }
        checkKeys(pairs, allowed: WorkflowLanguage.notifyTargetKeys, in: "`\(key)`", at: node.location)
        var events: Set<NotifyEvent>?
        var destination: NotifyTarget.Destination?
        var timeout: WorkflowDuration? = NotifyTarget.defaultTimeout
        var destinations = 0
        for pair in pairs {
            switch pair.key {
            case "on":
                events = notifyEvents(pair.value, key: key + ".on")
            case "webhook", "command":
                destinations += 1
                if destinations > 1 {
                    error(pair.keyLocation, "`\(key)` has both `webhook` and `command`; a target is one or the other (write two targets)")
                    continue
                }
                destination = pair.key == "webhook" ? webhook(pair.value, key: key + ".webhook") : notifyCommand(pair.value, key: key + ".command")
            case "timeout":
                timeout = duration(pair.value, key: key + ".timeout")
            default:
                break
            }
        }
        if destinations == 0 {
            error(node.location, "`\(key)` needs where to send: `webhook: URL` or `command: [argv]`")
        }
        guard let events, let destination, let timeout else { return nil }
        return NotifyTarget(events: events, destination: destination, timeout: timeout)
    }

    /// `on:` — one event or a list of them, each a known one.
    private mutating func notifyEvents(_ node: YAMLNode, key: String) -> Set<NotifyEvent>? {
        let names = NotifyEvent.allCases.map(\.rawValue)
        let items = node.sequence ?? [node]
        guard !items.isEmpty else {
            error(node.location, "`\(key)` must name at least one event (\(names.joined(separator: ", ")))")
            return nil
        }
        var events = Set<NotifyEvent>()
        var ok = true
        for item in items {
            guard case .string(let word)? = item.scalar?.resolved else {
                error(item.location, "`\(key)` must list events (\(names.joined(separator: ", "))), not \(describe(item))")
                ok = false
                continue
            }
            guard let event = NotifyEvent(rawValue: word) else {
                error(item.location, "unknown event '\(word)' in `\(key)`\(DidYouMean.hint(word, names)) (events: \(names.joined(separator: ", ")))")
                ok = false
                continue
            }
            events.insert(event)
        }
        return ok ? events : nil
    }

    /// `webhook:` — an http:// or https:// URL, or a template made from `env` and `vars` (checked
    /// when the run starts). A URL written out is not repeated in messages: it may be a secret.
    private mutating func webhook(_ node: YAMLNode, key: String) -> NotifyTarget.Destination? {
        guard case .string(let text)? = node.scalar?.resolved, !text.isEmpty else {
            error(node.location, "`\(key)` must be an http:// or https:// URL, not \(node.scalar == nil ? node.kindDescription : "an empty value or a number")")
            return nil
        }
        guard let template = templated(node, in: Scope(stage: nil, field: .notify)) else { return nil }
        if !template.hasExpressions, WebhookURL(text) == nil {
            error(node.location, "`\(key)` must be an http:// or https:// URL with a host (such as https://hooks.example.com/…), or `${{ env.NAME }}` to take it from the environment")
            return nil
        }
        return .webhook(template)
    }

    /// `command:` — an argv; the event's JSON comes on its stdin.
    private mutating func notifyCommand(_ node: YAMLNode, key: String) -> NotifyTarget.Destination? {
        guard let items = node.sequence, !items.isEmpty else {
            error(node.location, "`\(key)` must be \(ValueType.argv.expectation) such as [notify-send, amplify-run]; the event's JSON comes on its stdin")
            return nil
        }
        var argv: [Template] = []
        for (i, item) in items.enumerated() {
            guard let s = item.scalar, s.resolved != .null, item.sequence == nil else {
                error(item.location, "`\(key)[\(i)]` must be a string, not \(describe(item))")
                return nil
            }
            argv.append(templated(item, in: Scope(stage: nil, field: .notify)) ?? Template(parts: [.text(s.text)]))
        }
        return .command(argv)
    }
}
