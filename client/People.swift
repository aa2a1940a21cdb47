import Crypto
import Foundation
import GRDB
import NIOPosix
import SiteSyncCore

/// The person signed in on a laptop (docs/SECURITY.md, "People on a laptop").
public struct SignedInPerson: Sendable, Equatable, Codable {
    /// The person's username on the server.
    public var username: String
    /// The full name, which JSON outputs show as `user`.
    public var name: String
    /// What the person's account lets them do.
    public var role: PersonRole
    /// The sites the person works at; `["*"]` for every site.
    public var sites: [String]
    /// The id of the person's signing key on this laptop: 32 hex digits of its public key's SHA-256.
    public var keyID: String
    /// When the sign-in ends without another command (ISO 8601, UTC).
    public var endsAt: String

    enum CodingKeys: String, CodingKey {
        case username, role, sites
        case name = "user"
        case keyID = "key_id"
        case endsAt = "ends_at"
    }
}

/// What the laptop keeps of its people, in its file: what the server said of each at their last
/// sign-in or sync, and their signing key wrapped by their password (AES-GCM under a key scrypt
/// derives from the password), so that a later sign-in works offline and proves the password.
enum PeopleSQL {
    static let tables = """
        CREATE TABLE _sitesync_people (
            username TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            sites TEXT NOT NULL,                -- JSON array; ["*"] for every site
            state TEXT NOT NULL,                -- active or deactivated, as the server last said
            password_changed_at TEXT NOT NULL,
            key_id TEXT,                        -- NULL once the key is forgotten: the next sign-in needs the server
            wrapped_key BLOB,                   -- the private key, sealed by AES-GCM under scrypt(password, wrap_salt)
            wrap_salt BLOB,
            idle_timeout_s INTEGER NOT NULL,    -- the server's policy at the last sign-in
            max_attempts INTEGER NOT NULL,
            lockout_s INTEGER NOT NULL,
            last_sign_in_at TEXT
        ) WITHOUT ROWID;
        -- Wrong passwords in a row per username on this laptop, and the lockout they caused.
        CREATE TABLE _sitesync_sign_in_failures (
            username TEXT PRIMARY KEY NOT NULL,
            failures INTEGER NOT NULL,
            locked_until INTEGER                -- milliseconds since 1970
        ) WITHOUT ROWID;
        """
}

/// The policy a laptop applies before it has heard the server's.
enum SignInPolicy {
    static let idleTimeoutSeconds = 900
    static let maximumAttempts = 5
    static let lockoutSeconds = 900
}

/// A sign-in's session: the person's unwrapped signing key, kept outside the replica file, in a
/// file of the user's runtime directory readable by its owner only, and removed at sign-out, at
/// timeout, and when the server deactivates the person or changes their password. A copy of the
/// replica file carries none.
struct PersonSession: Codable {
    var username: String
    var keyID: String
    /// The Ed25519 private key, 32 bytes in base64.
    var privateKey: String
    var lastUsedMilliseconds: Int64
    var idleTimeoutSeconds: Int
    /// The replica file the session belongs to, by path and inode: another file with the same
    /// replica id (a copy) does not share it.
    var file: String
    var inode: UInt64

    var endsAtMilliseconds: Int64 { lastUsedMilliseconds + Int64(idleTimeoutSeconds) * 1000 }

    /// Where sessions live: `SITESYNC_SESSION_DIR`, else `$XDG_RUNTIME_DIR/sitesync` (a tmpfs the
    /// system empties at logout and reboot), else a folder of the user's in the temporary directory.
    static var directory: URL {
        let environment = ProcessInfo.processInfo.environment
        if let directory = environment["SITESYNC_SESSION_DIR"], !directory.isEmpty { return URL(fileURLWithPath: directory) }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return URL(fileURLWithPath: runtime).appendingPathComponent("sitesync") }
        return FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-\(getuid())")
    }

    /// The session file of the replica `replica` at `path`: copies of a file share its replica id,
    /// so the name also carries a digest of the file's path.
    static func url(replica: String, path: String) -> URL {
        let digest = SHA256.hash(data: Data(path.utf8)).prefix(6).map { String(format: "%02x", $0) }.joined()
        return directory.appendingPathComponent("\(replica)-\(digest).session")
    }

    /// The inode of `path`; 0 for a replica in memory.
    static func inode(_ path: String) -> UInt64 {
        var info = stat()
        guard !path.isEmpty, stat(path, &info) == 0 else { return 0 }
        return UInt64(info.st_ino)
    }

    static func read(replica: String, path: String) -> PersonSession? {
        guard let data = FileManager.default.contents(atPath: url(replica: replica, path: path).path) else { return nil }
        return try? JSONDecoder().decode(PersonSession.self, from: data)
    }

    /// Writes the session, readable and writable by its owner only from its first byte.
    func write(replica: String) throws {
        let directory = Self.directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let url = Self.url(replica: replica, path: file)
        let temporary = directory.appendingPathComponent(".\(replica).\(UUID().uuidString)")
        let data = try JSONEncoder().encode(self)
        guard FileManager.default.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw ReplicaError.invalidArgument("Cannot write the sign-in's session in \(directory.path).")
        }
        guard rename(temporary.path, url.path) == 0 else {
            try? FileManager.default.removeItem(at: temporary)
            throw ReplicaError.invalidArgument("Cannot write the sign-in's session in \(directory.path).")
        }
    }

    static func remove(replica: String, path: String) {
        try? FileManager.default.removeItem(at: url(replica: replica, path: path))
    }
}

extension Replica {
    /// Signs `username` in on this laptop with `password`.
    ///
    /// A person's first sign-in on a laptop goes to the server (`server`), which checks the
    /// password and registers the public half of a signing key the laptop makes for the person;
    /// the private half is kept wrapped by the password. Later sign-ins are offline: the password
    /// unwraps the key, or it is wrong. Wrong passwords in a row lock the person out on this laptop
    /// (5 for 15 minutes, or the server's policy). One person is signed in at a time: signing in
    /// ends the previous person's sign-in. The password's scrypt (a tenth of a second, 32 MiB)
    /// runs on NIO's thread pool, not on the caller's executor.
    ///
    /// - Throws: ``ReplicaError/signInRefused(_:)`` naming why; a ``SyncError`` when the server
    ///   is needed and cannot be reached.
    @discardableResult
    public func signIn(username: String, password: String, server: (any PeopleTransport)?) async throws -> SignedInPerson {
        let identity = try requireIdentity()
        guard Username.isValid(username) else {
            throw ReplicaError.signInRefused("The username \(TextRules.quotable(username, maxBytes: 64)) is not valid: \(Username.rule).")
        }
        let now = state.clock.wallMilliseconds
        let known = try await writer.read { db in try PersonRow.fetch(db, username: username) }
        try await checkLockout(username, known: known, at: now)
        if let known, known.state != "active" {
            throw ReplicaError.signInRefused("The account \(username) is deactivated; ask the trial's administrator.")
        }
        if let known, let wrapped = known.wrappedKey, let salt = known.wrapSalt, let keyID = known.keyID {
            // Offline: the password either unwraps the key or is wrong.
            let unwrapped = try await NIOThreadPool.singleton.runIfActive {
                try? PersonRow.unwrap(wrapped, salt: salt, password: password, username: username, keyID: keyID)
            }
            guard let privateKey = unwrapped else {
                throw try await failedAttempt(username, known: known, at: now)
            }
            try await writer.write { db in
                try db.execute(sql: "DELETE FROM _sitesync_sign_in_failures WHERE username = ?", arguments: [username])
                try db.execute(sql: "UPDATE _sitesync_people SET last_sign_in_at = ? WHERE username = ?", arguments: [Self.iso8601(now), username])
            }
            return try startSession(known.person, keyID: keyID, privateKey: privateKey, idleTimeout: known.idleTimeoutSeconds, identity: identity, at: now)
        }
        guard let server else {
            throw ReplicaError.signInRefused("The first sign-in of \(username) on this laptop needs the server, which this replica cannot reach.")
        }
        let key = Curve25519.Signing.PrivateKey()
        let response: SignInResponse
        do {
            response = try await server.signIn(
                SignInRequest(username: username, password: password, publicKey: key.publicKey.rawRepresentation.base64EncodedString()))
        } catch let error as SyncError where [401, 403, 429].contains(error.status) {
            if error.code == ErrorCode.signInFailed.rawValue { throw try await failedAttempt(username, known: known, at: now) }
            guard error.status != 401 else { throw error }
            throw ReplicaError.signInRefused(error.message)
        }
        guard response.person.username == username, response.keyID == PersonKeyID.of(publicKey: key.publicKey.rawRepresentation) else {
            throw SyncError.invalidResponse("the server answered a sign-in for another person or key")
        }
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let (keyID, rawKey) = (response.keyID, key.rawRepresentation)
        let wrapped = try await NIOThreadPool.singleton.runIfActive {
            try PersonRow.wrap(rawKey, salt: salt, password: password, username: username, keyID: keyID)
        }
        let row = PersonRow(
            person: response.person, keyID: response.keyID, wrappedKey: wrapped, wrapSalt: Data(salt), idleTimeoutSeconds: response.idleTimeoutSeconds,
            maximumAttempts: response.maximumAttempts, lockoutSeconds: response.lockoutSeconds)
        try await writer.write { db in
            try row.save(db, signedInAt: Self.iso8601(now))
            try db.execute(sql: "DELETE FROM _sitesync_sign_in_failures WHERE username = ?", arguments: [username])
        }
        return try startSession(
            response.person, keyID: response.keyID, privateKey: key.rawRepresentation, idleTimeout: response.idleTimeoutSeconds, identity: identity, at: now)
    }

    /// Ends the sign-in on this laptop; returns who was signed in, nil when nobody was.
    @discardableResult
    public func signOut() throws -> String? {
        let identity = try requireIdentity()
        let session = PersonSession.read(replica: identity.replicaID, path: sessionFilePath)
        PersonSession.remove(replica: identity.replicaID, path: sessionFilePath)
        return session?.username
    }

    /// The person signed in on this laptop, without extending the sign-in; nil when nobody is, or
    /// the sign-in has ended (it is then removed).
    public func signedInPerson() throws -> SignedInPerson? {
        let identity = try requireIdentity()
        return try currentSession(identity, at: state.clock.wallMilliseconds)?.person
    }

    /// The person signed in on this laptop, for a command they run: refuses when nobody is signed
    /// in, and extends the sign-in by its idle timeout.
    ///
    /// - Throws: ``ReplicaError/signInRequired(_:)`` naming what to run.
    @discardableResult
    public func requireSignedIn() throws -> SignedInPerson {
        let identity = try requireIdentity()
        let now = state.clock.wallMilliseconds
        guard var (session, person) = try currentSession(identity, at: now) else {
            throw ReplicaError.signInRequired("Nobody is signed in on this laptop: run `sitesync login USERNAME` first. Nothing was written.")
        }
        session.lastUsedMilliseconds = now
        try session.write(replica: identity.replicaID)
        person.endsAt = Self.iso8601(session.endsAtMilliseconds)
        return person
    }

    /// The session and its person, when one is signed in and the sign-in has not ended.
    func currentSession(_ identity: ReplicaIdentity, at now: Int64) throws -> (session: PersonSession, person: SignedInPerson)? {
        guard let session = PersonSession.read(replica: identity.replicaID, path: sessionFilePath) else { return nil }
        guard session.file == sessionFilePath, session.inode == PersonSession.inode(state.path), now <= session.endsAtMilliseconds,
            let row = try writer.read({ db in try PersonRow.fetch(db, username: session.username) }), row.state == "active", row.keyID == session.keyID
        else {
            PersonSession.remove(replica: identity.replicaID, path: sessionFilePath)
            return nil
        }
        let person = SignedInPerson(
            username: row.person.username, name: row.person.name, role: row.person.role, sites: row.person.sites, keyID: session.keyID,
            endsAt: Self.iso8601(session.endsAtMilliseconds))
        return (session, person)
    }

    private func startSession(
        _ person: PersonInfo, keyID: String, privateKey: Data, idleTimeout: Int, identity: ReplicaIdentity, at now: Int64
    ) throws -> SignedInPerson {
        let session = PersonSession(
            username: person.username, keyID: keyID, privateKey: privateKey.base64EncodedString(), lastUsedMilliseconds: now,
            idleTimeoutSeconds: idleTimeout, file: sessionFilePath, inode: PersonSession.inode(state.path))
        try session.write(replica: identity.replicaID)
        return SignedInPerson(
            username: person.username, name: person.name, role: person.role, sites: person.sites, keyID: keyID,
            endsAt: Self.iso8601(session.endsAtMilliseconds))
    }

    /// Refuses a sign-in while `username` is locked out on this laptop.
    private func checkLockout(_ username: String, known: PersonRow?, at now: Int64) async throws {
        let lockedUntil = try await writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT locked_until FROM _sitesync_sign_in_failures WHERE username = ?", arguments: [username])
        }
        if let lockedUntil, lockedUntil > now {
            throw ReplicaError.signInRefused(
                "\(username) is locked out on this laptop until \(Self.iso8601(lockedUntil)) after \(known?.maximumAttempts ?? SignInPolicy.maximumAttempts) wrong passwords in a row."
            )
        }
    }

    /// Counts a wrong password for `username`, locking them out after the policy's number in a
    /// row; the refusal to throw.
    private func failedAttempt(_ username: String, known: PersonRow?, at now: Int64) async throws -> ReplicaError {
        let maximum = known?.maximumAttempts ?? SignInPolicy.maximumAttempts
        let lockout = Int64(known?.lockoutSeconds ?? SignInPolicy.lockoutSeconds) * 1000
        let failures = try await writer.write { db -> Int in
            let previous = try Row.fetchOne(db, sql: "SELECT failures, locked_until FROM _sitesync_sign_in_failures WHERE username = ?", arguments: [username])
            // A lockout that has passed starts the count again.
            let expired = (previous?["locked_until"] as Int64?).map { $0 <= now } ?? false
            let failures = (expired ? 0 : (previous?["failures"] as Int? ?? 0)) + 1
            try db.execute(
                sql: """
                    INSERT INTO _sitesync_sign_in_failures (username, failures, locked_until) VALUES (?, ?, ?)
                    ON CONFLICT (username) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until
                    """,
                arguments: [username, failures, failures >= maximum ? now + lockout : nil])
            return failures
        }
        if failures >= maximum {
            return ReplicaError.signInRefused(
                "The username or the password is wrong. \(username) is now locked out on this laptop until \(Self.iso8601(now + lockout)) after \(maximum) wrong passwords in a row."
            )
        }
        let left = maximum - failures
        return ReplicaError.signInRefused("The username or the password is wrong; \(left) attempt\(left == 1 ? "" : "s") left before a lockout.")
    }

    /// Asks the server what it holds now of the people who signed in here, and applies it: a
    /// deactivated person can no longer sign in, and ends their sign-in; a person whose password
    /// changed has their key forgotten, so that their next sign-in goes to the server with the new
    /// password. Returns the people whose state changed.
    @discardableResult
    func refreshPeople(_ server: any PeopleTransport) async throws -> [String] {
        let identity = try requireIdentity()
        let known = try await writer.read { db in try PersonRow.fetchAll(db) }
        guard !known.isEmpty else { return [] }
        let answer = try await server.peopleStatus(PeopleStatusRequest(usernames: known.map(\.person.username)))
        let session = PersonSession.read(replica: identity.replicaID, path: sessionFilePath)
        let changed = try await writer.write { db -> [String] in
            var changed: [String] = []
            for person in answer.people {
                guard let row = known.first(where: { $0.person.username == person.username }) else { continue }
                let passwordChanged = person.passwordChangedAt > row.person.passwordChangedAt
                guard person != row.person else { continue }
                changed.append(person.username)
                try db.execute(
                    sql: """
                        UPDATE _sitesync_people SET name = ?, role = ?, sites = ?, state = ?, password_changed_at = ?,
                            key_id = CASE WHEN ? THEN NULL ELSE key_id END, wrapped_key = CASE WHEN ? THEN NULL ELSE wrapped_key END,
                            wrap_salt = CASE WHEN ? THEN NULL ELSE wrap_salt END
                        WHERE username = ?
                        """,
                    arguments: [
                        person.name, person.role.rawValue, JSONWriter.array(of: person.sites), person.state, person.passwordChangedAt,
                        passwordChanged, passwordChanged, passwordChanged, person.username,
                    ])
            }
            return changed
        }
        if let session, changed.contains(session.username) {
            // The session is checked against the row at every command; a forgotten key or a
            // deactivation ends it there. Remove it now too, so that nothing keeps the key.
            let row = try await writer.read { db in try PersonRow.fetch(db, username: session.username) }
            if row?.state != "active" || row?.keyID != session.keyID { PersonSession.remove(replica: identity.replicaID, path: sessionFilePath) }
        }
        return changed
    }

    /// The replica file's absolute path, which a session is bound to; empty for a replica in memory.
    private var sessionFilePath: String {
        state.path.isEmpty ? "" : URL(fileURLWithPath: state.path).standardizedFileURL.path
    }

    static func iso8601(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: TimeInterval(milliseconds / 1000)).formatted(.iso8601)
    }
}

/// A row of `_sitesync_people`.
struct PersonRow {
    var person: PersonInfo
    var keyID: String?
    var wrappedKey: Data?
    var wrapSalt: Data?
    var idleTimeoutSeconds: Int
    var maximumAttempts: Int
    var lockoutSeconds: Int

    var state: String { person.state }

    static let columns =
        "username, name, role, sites, state, password_changed_at, key_id, wrapped_key, wrap_salt, idle_timeout_s, max_attempts, lockout_s"

    init(
        person: PersonInfo, keyID: String?, wrappedKey: Data?, wrapSalt: Data?, idleTimeoutSeconds: Int, maximumAttempts: Int, lockoutSeconds: Int
    ) {
        (self.person, self.keyID, self.wrappedKey, self.wrapSalt) = (person, keyID, wrappedKey, wrapSalt)
        (self.idleTimeoutSeconds, self.maximumAttempts, self.lockoutSeconds) = (idleTimeoutSeconds, maximumAttempts, lockoutSeconds)
    }

    init?(_ row: Row) {
        guard let role = PersonRole(rawValue: row["role"]),
            let sites = try? JSONDecoder().decode([String].self, from: Data((row["sites"] as String).utf8))
        else { return nil }
        person = PersonInfo(
            username: row["username"], name: row["name"], role: role, sites: sites, state: row["state"], passwordChangedAt: row["password_changed_at"])
        keyID = row["key_id"]
        wrappedKey = row["wrapped_key"]
        wrapSalt = row["wrap_salt"]
        idleTimeoutSeconds = row["idle_timeout_s"]
        maximumAttempts = row["max_attempts"]
        lockoutSeconds = row["lockout_s"]
    }

    static func fetch(_ db: Database, username: String) throws -> PersonRow? {
        try Row.fetchOne(db, sql: "SELECT \(columns) FROM _sitesync_people WHERE username = ?", arguments: [username]).flatMap(PersonRow.init)
    }

    static func fetchAll(_ db: Database) throws -> [PersonRow] {
        try Row.fetchAll(db, sql: "SELECT \(columns) FROM _sitesync_people ORDER BY username").compactMap(PersonRow.init)
    }

    func save(_ db: Database, signedInAt: String) throws {
        try db.execute(
            sql: """
                INSERT INTO _sitesync_people (\(Self.columns), last_sign_in_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (username) DO UPDATE SET name = excluded.name, role = excluded.role, sites = excluded.sites, state = excluded.state,
                    password_changed_at = excluded.password_changed_at, key_id = excluded.key_id, wrapped_key = excluded.wrapped_key,
                    wrap_salt = excluded.wrap_salt, idle_timeout_s = excluded.idle_timeout_s, max_attempts = excluded.max_attempts,
                    lockout_s = excluded.lockout_s, last_sign_in_at = excluded.last_sign_in_at
                """,
            arguments: [
                person.username, person.name, person.role.rawValue, JSONWriter.array(of: person.sites), person.state, person.passwordChangedAt, keyID,
                wrappedKey, wrapSalt, idleTimeoutSeconds, maximumAttempts, lockoutSeconds, signedInAt,
            ])
    }

    /// The key that wraps a person's private key: scrypt of the password, at the cost of a stored
    /// password digest, so that guessing from a copied file costs as much as from the server's.
    private static func wrappingKey(password: String, salt: [UInt8]) throws -> SymmetricKey {
        SymmetricKey(data: try PasswordHash.derive(password, salt: salt, cost: .standard, byteCount: 32))
    }

    /// `privateKey` sealed under the password, bound to the person and the key's id.
    static func wrap(_ privateKey: Data, salt: [UInt8], password: String, username: String, keyID: String) throws -> Data {
        let sealed = try AES.GCM.seal(privateKey, using: wrappingKey(password: password, salt: salt), authenticating: Data("\(username) \(keyID)".utf8))
        guard let combined = sealed.combined else { throw ReplicaError.invalidArgument("Cannot seal the signing key.") }
        return combined
    }

    /// The private key `wrapped` seals; throws when the password is not the one it was sealed with.
    static func unwrap(_ wrapped: Data, salt: Data, password: String, username: String, keyID: String) throws -> Data {
        let box = try AES.GCM.SealedBox(combined: wrapped)
        return try AES.GCM.open(box, using: wrappingKey(password: password, salt: Array(salt)), authenticating: Data("\(username) \(keyID)".utf8))
    }
}
