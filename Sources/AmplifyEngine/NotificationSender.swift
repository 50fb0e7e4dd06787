/// Sends one notification to one target, once: the I/O half of `settings.notify`, which the
/// runner is given (AmplifyStages provides it: HTTP for webhooks, a process for commands).
public protocol NotificationSender: Sendable {
    /// One attempt; nil when delivered, else why not, in words that never hold a secret (the
    /// target is named `webhook #1`, never by its URL).
    func send(_ notification: Notification, to target: Int) async -> NotifyError?
}
