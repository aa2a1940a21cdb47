import GRDB
import GRDBSQLite

extension ReplicaState {
    /// Registers `sitesync_tick()` and `sitesync_tracking()` on a connection.
    ///
    /// The triggers call them on every tracked write, so they are C callbacks reading the state
    /// through SQLite's user-data pointer: GRDB's `DatabaseFunction` would allocate an argument array
    /// and box the result for each call. Each connection holds a reference to the state, released
    /// when SQLite drops the function.
    func installTrackingFunctions(_ db: Database) {
        let functions: [(name: String, body: @convention(c) (OpaquePointer?, CInt, UnsafeMutablePointer<OpaquePointer?>?) -> Void)] = [
            ("sitesync_tick", { context, _, _ in
                let state = ReplicaState.from(context)
                guard state.isInitialized else {
                    sqlite3_result_error(context, ReplicaError.notInitialized.message, -1)
                    return
                }
                sqlite3_result_int64(context, state.clock.tick().rawValue)
            }),
            ("sitesync_tracking", { context, _, _ in
                sqlite3_result_int(context, ReplicaState.from(context).isTracking ? 1 : 0)
            }),
        ]
        for function in functions {
            let code = sqlite3_create_function_v2(
                db.sqliteConnection, function.name, 0, SQLITE_UTF8, Unmanaged.passRetained(self).toOpaque(),
                function.body, nil, nil, { Unmanaged<ReplicaState>.fromOpaque($0!).release() }
            )
            precondition(code == SQLITE_OK, "registering \(function.name) failed with SQLite code \(code)")
        }
    }

    private static func from(_ context: OpaquePointer?) -> ReplicaState {
        Unmanaged<ReplicaState>.fromOpaque(sqlite3_user_data(context)).takeUnretainedValue()
    }
}
