// Programmer-error checks that print their message in every build.
//
// Swift's `precondition` traps silently in optimised (-O) builds, which are the builds users run; a shape
// mismatch must still say which op and which shapes. `require` calls `fatalError`, which always prints.

/// Stops the program with `message` if `condition` is false (a programmer error, such as a shape mismatch).
@inline(__always)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
