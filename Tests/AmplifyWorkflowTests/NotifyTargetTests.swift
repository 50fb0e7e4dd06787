import AmplifyWorkflow
import Testing

@Suite("settings.notify: the targets, and webhook URLs")
struct NotifyTargetTests {
    @Test("targets check into their events, destination and timeout; a secret stays a template")
    func targets() throws {
        let w = try #require(check("""
        version: 1
        vars: {channel: builds}
        settings:
          notify:
            - on: [question, waiting, run-end]
              webhook: ${{ env.SLACK_WEBHOOK }}
            - on: failed
              command: [notify-send, "amplify-run ${{ vars.channel }}"]
              timeout: 3s
        stages:
          a: {run: echo a}
        """).workflow)
        let targets = w.settings.notify
        #expect(targets.count == 2)
        #expect(targets[0].events == [.question, .waiting, .runEnd])
        guard case .webhook(let url) = targets[0].destination else { Issue.record("not a webhook"); return }
        #expect(url.sourceText == "${{ env.SLACK_WEBHOOK }}")
        #expect(targets[0].timeout == NotifyTarget.defaultTimeout)
        #expect(targets[0].name(1) == "webhook #1" && targets[1].name(2) == "command #2")
        #expect(targets[1].events == [.failed] && targets[1].timeout == .seconds(3))
        // Expressions see the targets as written, never rendered.
        guard case .list(let listed)? = w.settings.value["notify"] else { Issue.record("settings.notify is not a list"); return }
        #expect(listed.first?["webhook"] == .string("${{ env.SLACK_WEBHOOK }}"))
    }

    @Test("a list is required, and a target is a mapping")
    func shapes() {
        #expect(errors("version: 1\nsettings: {notify: {on: [question], webhook: 'http://x/'}}\nstages: {a: {run: x}}").contains { $0.contains("`settings.notify` must be a list of targets") })
        #expect(errors("version: 1\nsettings: {notify: [http://x/]}\nstages: {a: {run: x}}").contains { $0.contains("`settings.notify[0]` must be a target") })
        #expect(errors("version: 1\nsettings: {notify: [{on: [], webhook: 'http://x/'}]}\nstages: {a: {run: x}}").contains { $0.contains("must name at least one event") })
        #expect(errors("version: 1\nsettings: {notify: [{on: [run-end], webhook: 'http://x/', timeout: 0s}]}\nstages: {a: {run: x}}").contains { $0.contains("longer than zero") })
    }

    @Test("webhook URLs: http and https with a host; the port, the request target, IPv6", arguments: [
        ("http://127.0.0.1:8080/hook?x=1#frag", false, "127.0.0.1", 8080, "/hook?x=1", "127.0.0.1:8080"),
        ("https://hooks.slack.com/services/T/B/X", true, "hooks.slack.com", 443, "/services/T/B/X", "hooks.slack.com"),
        ("HTTP://example.com", false, "example.com", 80, "/", "example.com"),
        ("http://example.com?q", false, "example.com", 80, "/?q", "example.com"),
        ("http://[::1]:9/a", false, "::1", 9, "/a", "[::1]:9"),
    ])
    func urls(_ text: String, _ https: Bool, _ host: String, _ port: Int, _ target: String, _ header: String) throws {
        let url = try #require(WebhookURL(text))
        #expect(url.isHTTPS == https && url.host == host && url.port == port && url.target == target && url.hostHeader == header)
    }

    @Test("not a webhook URL", arguments: ["", "ftp://x/", "http://", "http:///path", "http://user:pw@x/", "http://x:0/", "http://x:99999/", "http://::1/", "http://x/a b", "hooks.slack.com/x"])
    func notURLs(_ text: String) {
        #expect(WebhookURL(text) == nil)
    }
}
