/// What each template of the monitoring page renders: one type per page, with the names its
/// template reads (swift-mustache looks them up by reflection). Every text is plain: the templates
/// escape it (``ScalarHTMLContentType``), except the chart's SVG, which ``ChangesChart`` builds
/// from numbers and escaped labels.
enum MonitorPages {
    /// A page: its title and who is logged in, around its content, which the template renders in
    /// a `{{#content}}` section (the header reads `title` and `who` from here).
    struct Frame<Content>: Sendable where Content: Sendable {
        let title: String
        /// The token's label, role and scope; nil on the login page.
        let who: String?
        let content: Content
    }

    struct Login: Sendable {
        /// How long a session lasts.
        let hours: Int
        /// The form token, repeated from the form's cookie.
        let csrf: String
        /// Why the last attempt was refused.
        let problem: String?
    }

    struct Overview: Sendable {
        struct Site: Sendable {
            let site: String
            let laptops: Int
            /// Laptops without a completed sync for the stale limit; nil for none.
            let stale: Int?
            let openConflicts: Int
            let lastSync: String
        }

        let sites: [Site]
        let now: String
        let staleAfter: String
    }

    struct Site: Sendable {
        struct Laptop: Sendable {
            let replica: String
            let user: String
            let lastSync: String
            let age: String
            let stale: Bool
            let pending: String
            let build: String
            let schema: String
            let clockOffset: String
        }

        struct Conflict: Sendable {
            let id: String
            let table: String
            let recordID: String
            let field: String
            let winner: String
            let winnerUser: String
            let loser: String
            let loserUser: String
            let detectedAt: String
        }

        struct Alert: Sendable {
            let subject: String
            let title: String
            let id: String
            let date: String
            let flags: [String]
        }

        struct Table: Sendable {
            let name: String
            let count: Int
        }

        let site: String
        let laptops: [Laptop]
        let conflicts: [Conflict]
        let openConflictCount: Int
        /// Whether more conflicts are open than the page lists.
        let moreConflicts: Bool
        let shownConflicts: Int
        let alerts: [Alert]
        let tables: [Table]
        /// The chart of changes per day, SVG.
        let chart: String
    }

    struct Conflict: Sendable {
        struct Side: Sendable {
            let value: String
            let user: String
            let replica: String
            let time: String
        }

        struct Resolution: Sendable {
            let decision: String
            let reviewer: String
            let reason: String
            let resolvedAt: String
        }

        let id: String
        let site: String
        let table: String
        let recordID: String
        let field: String
        let open: Bool
        let detectedAt: String
        let current: String
        let winner: Side
        let loser: Side
        let resolution: Resolution?
    }

    struct Error: Sendable {
        let message: String
    }
}
