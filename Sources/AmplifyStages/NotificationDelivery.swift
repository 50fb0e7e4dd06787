import AmplifyEngine
import AmplifyWorkflow

/// Sends notifications (`settings.notify`): the I/O the `NotificationLedger` decides on. A
/// webhook gets an HTTP POST of the event's JSON with its `id` as `Idempotency-Key` — `http://`
/// through the runner's own small client (`HTTPClient`), `https://` through curl, which reads the
/// URL from its stdin (`curl --config -`), never from an argv that `ps` shows. A command gets
/// the JSON on its stdin; exit status 0 is delivered.
///
/// Targets are rendered once, when the runner starts. A secret from the environment lives only
/// here: every message names the target by its number (`webhook #1`), and anything that holds
/// the secret is cut out of what a command or curl said before it is journaled or shown.
public struct NotificationDelivery: NotificationSender {
    enum Destination: Sendable {
        case http(WebhookURL)
        /// The URL as given, and curl's path.
        case https(String, curl: String)
        case command([String])
    }

    struct Target: Sendable {
        var destination: Destination
        var timeout: WorkflowDuration
    }

    let targets: [Target]
    /// Values to cut out of anything said: the rendered URLs, and what of the environment they hold.
    let secrets: [String]
    let environment: [String: String]
    /// Where commands run (the repository).
    let directory: String

    /// Renders `targets` with `vars` and the environment: an error (said before the run starts)
    /// for a webhook that is not an http:// or https:// URL, or an https:// one without curl.
    public init(targets: [NotifyTarget], vars: OrderedObject, environment: [String: String], directory: String) throws(NotifyError) {
        let env = Value.object(OrderedObject(environment.sorted { $0.key < $1.key }.map { ($0.key, Value.string($0.value)) }))
        let evaluator = ExpressionEvaluator(context: ExpressionContext(roots: ["env": env, "vars": .object(vars)]))
        func render(_ t: Template, _ name: String) throws(NotifyError) -> String {
            do { return try evaluator.render(t).renderedText } catch { throw NotifyError("\(name): `\(t.sourceText)`: \(error.message)") }
        }
        var rendered: [Target] = []
        var secrets: [String] = []
        for (i, target) in targets.enumerated() {
            let name = target.name(i + 1)
            switch target.destination {
            case .webhook(let template):
                let url = try render(template, name)
                guard let parsed = WebhookURL(url) else {
                    let from = template.hasExpressions ? " (it comes from `\(template.sourceText)`: is that set in the environment?)" : ""
                    throw NotifyError("\(name) is not an http:// or https:// URL with a host\(from)")
                }
                if parsed.isHTTPS {
                    guard let curl = ChildProcess.find("curl", path: environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin") else {
                        throw NotifyError("\(name) is an https:// URL, which is sent with curl, and curl is not on PATH; install curl, or use an http:// URL")
                    }
                    rendered.append(Target(destination: .https(url, curl: curl), timeout: target.timeout))
                } else {
                    rendered.append(Target(destination: .http(parsed), timeout: target.timeout))
                }
                secrets.append(url)
                if template.hasExpressions { secrets += environment.values.filter { $0.count >= 4 && url.contains($0) } }
            case .command(let templates):
                var argv: [String] = []
                for t in templates { argv.append(try render(t, name)) }
                rendered.append(Target(destination: .command(argv), timeout: target.timeout))
                if templates.contains(where: \.hasExpressions) {
                    secrets += environment.values.filter { v in v.count >= 4 && argv.contains { $0.contains(v) } }
                }
            }
        }
        self.targets = rendered
        // Longest first, so that a secret holding another is cut out whole.
        self.secrets = Array(Set(secrets)).sorted { $0.count > $1.count }
        self.environment = environment
        self.directory = directory
    }

    public func send(_ notification: Notification, to number: Int) async -> NotifyError? {
        guard targets.indices.contains(number - 1) else { return NotifyError("there is no target #\(number)") }
        let target = targets[number - 1]
        let error: NotifyError?
        switch target.destination {
        case .http(let url):
            let headers = [("Content-Type", "application/json"), ("Idempotency-Key", notification.id), ("User-Agent", "amplify-run")]
            switch await HTTPClient.post(url, body: notification.body, headers: headers, timeout: target.timeout) {
            case .success(let status): error = NotificationDelivery.judge(status: status)
            case .failure(let e): error = e
            }
        case .https(let url, let curl):
            error = await viaCurl(curl, url: url, notification, timeout: target.timeout)
        case .command(let argv):
            error = await command(argv, notification, timeout: target.timeout)
        }
        return error.map { NotifyError(redact($0.message)) }
    }

    /// 2xx is delivered; anything else is said with its code.
    static func judge(status: Int) -> NotifyError? {
        switch status {
        case 200..<300: return nil
        case 300..<400: return NotifyError("HTTP \(status) (redirects are not followed)")
        default: return NotifyError("HTTP \(status)")
        }
    }

    /// curl reads everything from its stdin (`--config -`): the URL, the headers and the body.
    /// What it says is not passed on (its messages name the URL); its exit status is, in words.
    private func viaCurl(_ curl: String, url: String, _ n: Notification, timeout: WorkflowDuration) async -> NotifyError? {
        func quoted(_ s: String) -> String {
            "\"" + s.unicodeScalars.map { c -> String in
                switch c {
                case "\\": return "\\\\"
                case "\"": return "\\\""
                case "\n": return "\\n"
                case "\r": return "\\r"
                case "\t": return "\\t"
                default: return String(c)
                }
            }.joined() + "\""
        }
        let seconds = max(1, (timeout.milliseconds + 999) / 1000)
        let config = [
            "url = \(quoted(url))", "request = \"POST\"", "proto = \"=https\"",
            "header = \"Content-Type: application/json\"", "header = \(quoted("Idempotency-Key: " + n.id))", "header = \"User-Agent: amplify-run\"",
            "data-binary = \(quoted(String(decoding: n.body, as: UTF8.self)))",
            "silent", "show-error", "output = \"/dev/null\"", "write-out = \"%{http_code}\"", "max-time = \(seconds)",
        ].joined(separator: "\n") + "\n"
        // -q first: no ~/.curlrc of the user's changes what is sent.
        let r = await CommandRunner.run([curl, "-q", "--config", "-"], in: directory, environment: environment, stdoutLimit: 64,
                                        input: Array(config.utf8), timeout: .milliseconds(timeout.milliseconds + 5000))
        if r.timedOut { return NotifyError("timed out after \(timeout)") }
        if let why = r.spawnError { return NotifyError(why) }
        guard r.termination == .exited(0) else {
            let said: [Int32: String] = [6: "cannot find the host's address", 7: "cannot connect", 28: "timed out after \(timeout)",
                                         35: "the TLS handshake failed", 52: "the connection closed without an answer", 56: "the connection broke",
                                         60: "the server's certificate is not trusted"]
            if case .exited(let code) = r.termination { return NotifyError("curl: \(said[code] ?? "exited with status \(code)")") }
            return NotifyError("curl \(r.termination)")
        }
        guard let status = Int(r.stdout.trimming(" \t\r\n")) else { return NotifyError("curl printed no HTTP status") }
        return NotificationDelivery.judge(status: status)
    }

    /// The command gets the event's JSON on its stdin, and `AMPLIFY_NOTIFY_ID`/`_EVENT`.
    private func command(_ argv: [String], _ n: Notification, timeout: WorkflowDuration) async -> NotifyError? {
        var env = environment
        env["AMPLIFY_RUN_ID"] = n.run
        env["AMPLIFY_NOTIFY_ID"] = n.id
        env["AMPLIFY_NOTIFY_EVENT"] = n.event.rawValue
        let r = await CommandRunner.run(argv, in: directory, environment: env, stdoutLimit: 1 << 12, stderrLimit: 1 << 12,
                                        input: n.body, timeout: .milliseconds(timeout.milliseconds))
        if r.timedOut { return NotifyError("timed out after \(timeout)") }
        if let why = r.spawnError { return NotifyError(why) }
        guard r.succeeded else {
            let said = CommandRunner.tail(r.stderr.isEmpty ? r.stdout : r.stderr, lines: 3)
            return NotifyError("\(r.termination)" + (said.isEmpty ? "" : ": " + said))
        }
        return nil
    }

    /// `text` with every secret cut out.
    func redact(_ text: String) -> String {
        var out = text
        for secret in secrets where out.contains(secret) {
            out = out.split(separator: secret, omittingEmptySubsequences: false).joined(separator: "[redacted]")
        }
        return out
    }
}
