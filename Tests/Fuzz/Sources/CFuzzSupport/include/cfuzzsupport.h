// unshare(2) with CLONE_NEWNET, which Glibc's Swift overlay does not import (_GNU_SOURCE).
int sixgate_fuzz_unshare_network(void);

#include <stddef.h>
#include <stdint.h>
// libFuzzer's driver (linked by -sanitize=fuzzer): runs `callback` as LLVMFuzzerTestOneInput. Called
// from the target's Swift entry point, since SwiftPM gives every executable a main of its own.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
