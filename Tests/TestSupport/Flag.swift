// A flag one thread raises and others read (a stop signal, a "this happened"), for tests that run threads.
import Foundation

public final class Flag: @unchecked Sendable {
    // @unchecked Sendable: `raised` is read and written under `lock` only.
    private let lock = NSLock()
    private var raised = false
    public init() {}
    public func set() { lock.withLock { raised = true } }
    public var value: Bool { lock.withLock { raised } }
}
