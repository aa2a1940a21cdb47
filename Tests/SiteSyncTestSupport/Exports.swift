// The tests reach the server below HTTP through the same helper as the bench.
@_exported import LoopbackHTTP
