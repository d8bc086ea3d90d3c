// CPcap: libpcap for Diagnostics. Headers only.
#ifndef SIXGATE_CPCAP_SHIM_H
#define SIXGATE_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
