#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cprivileges.h"

static int get(struct __user_cap_data_struct d[2]) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    return (int)syscall(SYS_capget, &h, d);
}

int sixgate_keep_capabilities(uint64_t keep) {
    struct __user_cap_data_struct d[2];
    if (get(d) != 0) return -1;
    /* The bounding set first, while CAP_SETPCAP is still effective (without it, as under a
       systemd unit's CapabilityBoundingSet, the bounding set is already someone else's choice).
       Capability numbers past the kernel's last are EINVAL: the end of the list. */
    int setpcap = (d[0].effective >> CAP_SETPCAP) & 1;
    for (int c = 0; setpcap && c < 64; c++) {
        if (keep & (1ULL << c)) continue;
        int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
        if (r < 0) { if (errno == EINVAL) break; return -1; }
        if (r == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) return -1;
    }
    d[0].effective &= (uint32_t)keep;          d[1].effective &= (uint32_t)(keep >> 32);
    d[0].permitted &= (uint32_t)keep;          d[1].permitted &= (uint32_t)(keep >> 32);
    d[0].inheritable &= (uint32_t)keep;        d[1].inheritable &= (uint32_t)(keep >> 32);
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    return (int)syscall(SYS_capset, &h, d);
}

int sixgate_capabilities(uint64_t *effective, uint64_t *permitted, uint64_t *bounding) {
    struct __user_cap_data_struct d[2];
    if (get(d) != 0) return -1;
    *effective = (uint64_t)d[1].effective << 32 | d[0].effective;
    *permitted = (uint64_t)d[1].permitted << 32 | d[0].permitted;
    uint64_t b = 0;
    for (int c = 0; c < 64; c++) {
        int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
        if (r < 0) break;
        if (r == 1) b |= 1ULL << c;
    }
    *bounding = b;
    return 0;
}

int sixgate_become_user(uint32_t uid, uint32_t gid, uint64_t keep) {
    /* The bounding set first, while CAP_SETPCAP is there (it does not touch the permitted set,
       so CAP_SETUID and CAP_SETGID still work below). */
    for (int c = 0; c < 64; c++) {
        if (keep & (1ULL << c)) continue;
        int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
        if (r < 0) { if (errno == EINVAL) break; return -1; }
        if (r == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) return -1;
    }
    /* Keep the permitted set across setuid, give up every group, then the ids. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return -1;
    if (syscall(SYS_setgroups, 0, NULL) != 0) return -1;
    if (syscall(SYS_setresgid, gid, gid, gid) != 0) return -1;
    if (syscall(SYS_setresuid, uid, uid, uid) != 0) return -1;
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return -1;
    /* setuid cleared the effective set: make `keep` effective, permitted and inheritable again. */
    struct __user_cap_data_struct d[2];
    if (get(d) != 0) return -1;
    d[0].effective = d[0].permitted & (uint32_t)keep;     d[1].effective = d[1].permitted & (uint32_t)(keep >> 32);
    d[0].permitted &= (uint32_t)keep;                     d[1].permitted &= (uint32_t)(keep >> 32);
    d[0].inheritable = d[0].permitted;                    d[1].inheritable = d[1].permitted;
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    if (syscall(SYS_capset, &h, d) != 0) return -1;
    /* Ambient: the programs it runs (nft, hooks) keep them too, though they are not root. */
    for (int c = 0; c < 64; c++) {
        if (!(keep & (1ULL << c))) continue;
        uint32_t have = c < 32 ? (d[0].permitted >> c) & 1 : (d[1].permitted >> (c - 32)) & 1;
        if (have && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0) return -1;
    }
    return 0;
}

int sixgate_no_new_privileges(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}
