// The libFuzzer entry point for the wire codec. `Fuzz/run` compiles it together with
// SiteSyncCore's sources, optimised (so `UnsafeRawBufferPointer`'s bounds are unchecked, as in a
// release build) and with AddressSanitizer, which catches every read past the input instead.
// It is not a package target: SwiftPM would build every target with the fuzzer's runtime.

/// Reads one input as every bulk message and as plain JSON. Whatever is accepted must be written
/// and read back unchanged; anything else must be refused with an error, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func wireFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let push = try? PushRequest(wireJSON: bytes) {
        let written = try! push.wireJSON()
        let again = try! written.withUnsafeBytes { bytes throws(JSONReadError) in try PushRequest(wireJSON: bytes) }
        precondition(again == push, "a push request changed when written and read again")
    }
    if let pull = try? PullResponse(wireJSON: bytes) {
        let written = try! pull.wireJSON()
        let again = try! written.withUnsafeBytes { bytes throws(JSONReadError) in try PullResponse(wireJSON: bytes) }
        precondition(again == pull, "a pull response changed when written and read again")
    }
    _ = try? JSONReader.checkWellFormed(bytes)
    return 0
}
