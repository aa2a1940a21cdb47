import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes

/// Closes a connection that does not deliver a whole request in time: its head and its body within
/// ``ServerConfiguration/requestDeadline`` of the moment the connection opened or the previous
/// answer ended, extended by one second for each ``ServerConfiguration/minimumRequestRate`` bytes of
/// body received. A client trickling a byte every few seconds, which a read timeout alone never
/// closes, is cut off; a slow link sending a large push at a steady rate is not. The time the
/// server spends answering a request (a pull that waits for changes) does not count.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let deadline: TimeAmount
    private let bytesPerSecond: Int
    private let logger: Logger
    /// When the request being read started: the connection's opening or the previous answer's end;
    /// nil while a request is being answered.
    private var reading: NIODeadline?
    private var received = 0
    private var check: RepeatedTask?

    init(deadline: TimeAmount, bytesPerSecond: Int, logger: Logger) {
        self.deadline = deadline
        self.bytesPerSecond = max(bytesPerSecond, 1)
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        startReading()
        // Checked often enough to close within a tenth of the deadline (and at least every second).
        let interval = min(TimeAmount.nanoseconds(deadline.nanoseconds / 10), .seconds(1))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (handler, context) = loopBound.value
            handler.closeIfLate(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: break
        case .body(let body): received += body.readableBytes
        case .end: reading = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { startReading() }
        context.write(data, promise: promise)
    }

    private func startReading() {
        reading = .now()
        received = 0
    }

    private func closeIfLate(context: ChannelHandlerContext) {
        guard let reading else { return }
        let allowed = deadline + .nanoseconds(Int64(received) * 1_000_000_000 / Int64(bytesPerSecond))
        guard NIODeadline.now() - reading > allowed else { return }
        logger.notice(
            "request not received in time; connection closed",
            metadata: ["http.body_bytes": "\(received)", "http.remote": "\(context.remoteAddress?.description ?? "unknown")"]
        )
        check?.cancel()
        check = nil
        context.close(promise: nil)
    }
}
