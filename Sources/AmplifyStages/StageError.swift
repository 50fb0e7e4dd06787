import AmplifyEngine

/// A stage's failure with its message.
struct StageError: Error, Sendable {
    var message: String
    var kind: FailureKind = .failed
    init(_ message: String, kind: FailureKind = .failed) {
        self.message = message
        self.kind = kind
    }

    var result: StageResult { kind == .failed ? .failed(message) : .failedAs(kind, message) }
}

