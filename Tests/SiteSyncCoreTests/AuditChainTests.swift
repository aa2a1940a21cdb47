import SiteSyncCore
import Testing

/// The chain's hash as docs/AUDIT.md defines it, so that an inspector can work it out with any
/// SHA-256 tool.
@Suite("Audit chain hash")
struct AuditChainTests {
    @Test("A row's hash is SHA-256 of the previous hash and each cell as a tag, its length in 8 bytes big-endian, and its UTF-8 bytes")
    func definition() {
        // Worked out independently: Python's hashlib over b"0"*64 + b"\x01" + (1).to_bytes(8, "big") + b"a" + b"\x00"
        // + b"\x01" + (4).to_bytes(8, "big") + "Zoë".encode().
        #expect(AuditChain.hash(previous: AuditChain.genesis, cells: ["a", nil, "Zoë"]) == "d0976057b7e0af4fb7b20a5e0a58bd9033a2c214466c7bf516402c1f8b9812ff")
        // NULL and empty text differ; so do the same bytes split across cells differently.
        #expect(AuditChain.hash(previous: AuditChain.genesis, cells: [nil]) != AuditChain.hash(previous: AuditChain.genesis, cells: [""]))
        #expect(AuditChain.hash(previous: AuditChain.genesis, cells: ["ab", "c"]) != AuditChain.hash(previous: AuditChain.genesis, cells: ["a", "bc"]))
        #expect(AuditChain.hash(previous: String(repeating: "f", count: 64), cells: ["a"]) != AuditChain.hash(previous: AuditChain.genesis, cells: ["a"]))
    }
}
