import AmplifyEngine
import AmplifyStages
import ArgumentParser
import FoundationEssentials
import Hummingbird
#if canImport(Glibc)
import Glibc
#endif

/// `serve`: the dashboard (SPEC §9) — an HTTP server over the repository's state directory,
/// every run live or finished. It decides nothing a runner decides: what it writes it writes by
/// running `answer`, `approve`, `reject` and `cancel` themselves (`Dashboard`).
struct ServeCommand: ContextualCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the dashboard: every run of the repository, live, in a browser (and its JSON API)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Where to listen (port 0: a free one). Anything but loopback needs a token.", valueName: "HOST:PORT"))
    var listen = "127.0.0.1:8787"

    @Option(help: ArgumentHelp("A file holding the token every request must carry (else $AMPLIFY_TOKEN).", valueName: "FILE"))
    var tokenFile: String?

    @Flag(help: "Open the page in a browser (xdg-open).")
    var open = false

    func run(_ context: CommandContext) async throws {
        guard let (host, port) = ServeCommand.address(listen) else {
            context.error("--listen \(listen): expected HOST:PORT, such as 127.0.0.1:8787 or [::1]:0")
            throw ExitCode(2)
        }
        var token: String?
        if let tokenFile {
            let text = CommandRunner.readCapped(tokenFile, limit: 4096).trimming(" \t\r\n")
            guard !text.isEmpty else {
                context.error("--token-file \(tokenFile): no token in it (or it cannot be read)")
                throw ExitCode(2)
            }
            token = text
        } else if let t = context.environment["AMPLIFY_TOKEN"], !t.isEmpty {
            token = t
        }
        guard token != nil || ServeCommand.isLoopback(host) else {
            context.error("--listen \(listen) is reachable from other machines: set a token (--token-file FILE or AMPLIFY_TOKEN) or listen on 127.0.0.1")
            throw ExitCode(2)
        }
        guard let states = StateDirectories.find(from: context.directory) else { throw ExitCode(4) }
        let dashboard = Dashboard(repository: states.repository, context: context, token: token)
        let shown = host.contains(":") ? "[\(host)]" : host
        let app = Application(
            responder: dashboard,
            configuration: .init(address: .hostname(host, port: port), serverName: "amplify-run"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                context.out.line("serving http://\(shown):\(bound)/")
                if open { _ = await CommandRunner.run(["xdg-open", "http://\(shown):\(bound)/"], in: states.repository, environment: context.environment) }
            },
            logger: Dashboard.quietLogger
        )
        // SIGINT or SIGTERM: stop at once, exit 0. The server keeps no state to save, and a
        // graceful shutdown would wait for every open event stream to end.
        let trap = SignalTrap(signals: [SIGINT, SIGTERM]) { _ in
            fflush(nil)
            _exit(0)
        }
        defer { trap.cancel() }
        do { try await app.run() } catch {
            context.error("cannot serve on \(listen): \(error)")
            throw ExitCode(4)
        }
    }

    /// `HOST:PORT`, `[V6]:PORT`.
    static func address(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
