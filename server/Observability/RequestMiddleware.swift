import HTTPTypes
import Hummingbird

/// The outermost middleware: every response carries the request's id in `X-Request-ID` (the id
/// the log records as `hb.request.id`, and error bodies as `request_id`), and is counted in the
/// metrics by method, route pattern and status, refusals also by error code.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            response.headers[.requestID] = context.requestID
            count(request, context, status: response.status)
            return response
        } catch {
            // By here every error is a ServerError (ErrorMiddleware), which sets the header itself.
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            count(request, context, status: status)
            if let error = error as? ServerError, error.status.code < 500 { metrics.refusal(error.code.rawValue) }
            throw error
        }
    }

    private func count(_ request: Request, _ context: Context, status: HTTPResponse.Status) {
        // The route's pattern, never the path: a path holds ids, and each would make a new series.
        metrics.request(method: request.method.rawValue, route: context.endpointPath ?? "unmatched", status: status.code)
    }
}

extension HTTPField.Name {
    /// `X-Request-ID`: the id under which the server's log records the request.
    static let requestID = HTTPField.Name("X-Request-ID")!
}
