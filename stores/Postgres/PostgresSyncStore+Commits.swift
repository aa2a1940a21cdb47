import Logging
import PostgresNIO
import SiteSyncCore
import SiteSyncRules

extension PostgresSyncStore: CommitFeed {
    /// The channel of `NOTIFY` on which each push transaction announces its sites.
    static let commitChannel = "sitesync_commits"

    /// Listens on ``commitChannel`` on a connection of its own, until the task is cancelled, and
    /// reports each push that any instance committed. A lost connection is opened again a second
    /// later; pushes committed meanwhile wake nobody, and the pulls waiting for them answer when
    /// their wait ends.
    public func watchCommits(_ committed: @escaping @Sendable (CommittedPush) -> Void) async throws {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.commitChannel) { notifications in
                        for try await notification in notifications {
                            if let push = CommittedPush(payload: notification.payload) { committed(push) }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("listening for other instances' pushes failed; listening again in a second", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
