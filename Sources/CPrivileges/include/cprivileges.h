// Capabilities of the calling process (capget/capset and the bounding set through prctl), which
// Glibc's Swift overlay does not import: the daemons keep only what they need after setup.
#include <stdint.h>

/// Keeps the capabilities in `keep` (a bit per capability number) in the effective, permitted and
/// inheritable sets and in the bounding set, and drops every other. 0 on success, else -1 and errno.
int sixgate_keep_capabilities(uint64_t keep);

/// The effective, permitted and bounding sets of the calling process (bit per capability).
int sixgate_capabilities(uint64_t *effective, uint64_t *permitted, uint64_t *bounding);

/// Becomes `uid`/`gid` (no supplementary groups) keeping the capabilities in `keep` effective,
/// permitted, inheritable and ambient (so programs it runs keep them). 0, or -1 and errno.
int sixgate_become_user(uint32_t uid, uint32_t gid, uint64_t keep);

/// PR_SET_NO_NEW_PRIVS: no execve (setuid binaries, file capabilities) can add privileges. 0, or -1 and errno.
int sixgate_no_new_privileges(void);
