/// A run that cannot proceed, with the exit code it means (2: usage, 4: locked or unusable state).
public struct RunFailure: Error, Sendable, CustomStringConvertible {
    public var exitCode: Int32
    public var message: String
    public var description: String { message }
}
