// Capabilities of the calling process (capget/capset and the bounding set through prctl), which
// Glibc's Swift overlay does not import: the daemons keep only what they need after setup.
#include <stdint.h>

/// The effective, permitted and bounding sets of the calling process (bit per capability).
int sixgate_capabilities(uint64_t *effective, uint64_t *permitted, uint64_t *bounding);


/// The privilege drop on every thread of the process (credentials and capabilities are per thread
/// in Linux): the bounding set to `keep`; with `change_ids`, no supplementary groups and uid/gid
/// `uid`/`gid` (glibc's broadcast), `keep` also inheritable and ambient; permitted and effective
/// to `keep`; NO_NEW_PRIVS. The per-thread steps go by a real-time signal to each thread in
/// /proc/self/task. 0, or -1 and errno.
int sixgate_drop_all_threads(uint32_t uid, uint32_t gid, uint64_t keep, int change_ids);

/// The real-time signal `sixgate_drop_all_threads` uses: a daemon must not block it in the threads
/// it makes before the drop (those that do end up as the user without any capability).
int sixgate_drop_signal(void);
