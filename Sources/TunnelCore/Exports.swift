// TunnelCore's users get the I/O layer's types (TunDevice, UDPSocket, TunnelError) with it, as
// before the split (issue 21).
@_exported import SixgateIO
