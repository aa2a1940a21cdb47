/// What a token may read, whichever store answers: a site token its own site's records and
/// conflicts, a reviewer every site, a monitor its site or every site, admin and metrics tokens none.
package enum ReadScope {
    /// Refuses a token that may read no records.
    package static func requireReader(_ principal: Principal) throws {
        guard principal.canRead else { throw SyncRefusal.forbidden("This \(principal.role.rawValue) token cannot read records.") }
    }

    /// The site a listing may show, given the site it asks for: the token's own for a site token or
    /// a site's monitor (asking for another is refused), the one asked for (or every site, nil) for
    /// a reviewer or a monitor of every site.
    package static func site(_ requested: String?, principal: Principal) throws -> String? {
        switch principal.role {
        case .admin, .metrics:
            throw SyncRefusal.forbidden("This \(principal.role.rawValue) token cannot read records.")
        case .reviewer:
            return requested
        case .monitor where principal.site == nil:
            return requested
        case .site, .monitor:
            if let requested, requested != principal.site {
                throw SyncRefusal.forbidden("This token reads site \(principal.site ?? "") only; it asked for site \(requested).")
            }
            return principal.site
        }
    }
}
