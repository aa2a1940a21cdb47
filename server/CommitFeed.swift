import ServiceLifecycle
import SiteSyncCore
import SiteSyncRules

/// Runs a store's ``CommitFeed`` beside the server, waking the pulls waiting here.
struct CommitWatcher: Service {
    let feed: any CommitFeed
    let changes: ChangeNotifier

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await feed.watchCommits { push in changes.committed(sites: push.sites, by: push.replica) }
        }
    }
}
