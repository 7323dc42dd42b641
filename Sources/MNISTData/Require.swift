// Programmer-error checks that print their message in optimised builds too (Swift's `precondition` traps silently
// under -O). Autodiff has the public twin that the modules above use; this copy keeps MNISTData free of it.

@inline(__always)
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
