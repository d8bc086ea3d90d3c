// Diagnostics on libpcap. Live capture, the one-line decoder and the doctor arrive with issue 9.
import CPcap

/// Facts about the capture library Diagnostics is built on.
public enum LivePcap {
    /// libpcap's own version string, e.g. "libpcap version 1.10.3 (with TPACKET_V3)".
    public static var libraryVersion: String { String(cString: pcap_lib_version()) }
}
