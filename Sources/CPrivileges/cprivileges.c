#define _GNU_SOURCE 1
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

/* ---- Every thread at once ----
   Credentials and capabilities are per thread in Linux: a raw capset, the bounding and ambient sets
   and NO_NEW_PRIVS change the calling thread only, and the daemons drop their privileges after
   setup, when their control, packet and watcher threads already run. glibc's setresuid() and
   friends reach every thread (its SIGSETXID cannot be blocked); for the rest a real-time signal
   whose handler applies the step to its own thread is sent to each thread of /proc/self/task:
     1. every thread changes its ids itself, keeping its capabilities (PR_SET_KEEPCAPS);
     2. glibc changes groups, gid and uid on every thread (a no-op where step 1 ran);
     3. every thread keeps only `keep` (effective, permitted, inheritable, ambient, bounding) and
        sets NO_NEW_PRIVS.
   A thread that blocks the signal (libdispatch's workers block all) cannot take steps 1 and 3: step
   2 still makes it the user, and without KEEPCAPS it then has no capability at all. The handler
   uses raw system calls only (async-signal-safe). */
#include <dirent.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct { uint32_t uid, gid; uint64_t keep; int change_ids; int phase; } plan;
static atomic_int failed;

static int finish_this_thread(void) {
    uint64_t keep = plan.keep;
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    /* After the change of ids the effective set is empty: what is permitted becomes effective
       again, so CAP_SETPCAP can shrink the bounding set. */
    if (get(d) != 0) return -1;
    d[0].effective = d[0].permitted;              d[1].effective = d[1].permitted;
    if (syscall(SYS_capset, &h, d) != 0) return -1;
    for (int c = 0; c < 64; c++) {
        if (keep & (1ULL << c)) continue;
        int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
        if (r < 0) { if (errno == EINVAL) break; return -1; }
        if (r == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EPERM) return -1;
    }
    if (get(d) != 0) return -1;
    d[0].permitted &= (uint32_t)keep;             d[1].permitted &= (uint32_t)(keep >> 32);
    d[0].effective = d[0].permitted;              d[1].effective = d[1].permitted;
    if (plan.change_ids) { d[0].inheritable = d[0].permitted; d[1].inheritable = d[1].permitted; }
    else { d[0].inheritable &= (uint32_t)keep; d[1].inheritable &= (uint32_t)(keep >> 32); }
    if (syscall(SYS_capset, &h, d) != 0) return -1;
    if (plan.change_ids) {
        for (int c = 0; c < 64; c++) {
            if (!(keep & (1ULL << c))) continue;
            uint32_t have = c < 32 ? (d[0].permitted >> c) & 1 : (d[1].permitted >> (c - 32)) & 1;
            if (have && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0) return -1;
        }
    }
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* Step 1 on one thread: the new ids, keeping the capabilities (effective again, so the glibc
   broadcast of step 2 finds CAP_SETUID and CAP_SETGID on this thread and changes nothing here). */
static int change_ids_this_thread(void) {
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return -1;
    if (syscall(SYS_setgroups, 0, NULL) != 0) return -1;
    if (syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) return -1;
    if (syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) return -1;
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (get(d) != 0) return -1;
    d[0].effective = d[0].permitted;              d[1].effective = d[1].permitted;
    return (int)syscall(SYS_capset, &h, d);
}

static int step_this_thread(void) {
    return plan.phase == 1 ? change_ids_this_thread() : finish_this_thread();
}

/* Threads that ran the current step, by id (the handler appends itself). */
enum { MAXT = 4096 };
static pid_t responded[MAXT];
static atomic_int nresponded;

static void step_handler(int sig) {
    (void)sig;
    int saved = errno;
    if (step_this_thread() != 0) atomic_fetch_add(&failed, 1);
    int i = atomic_fetch_add(&nresponded, 1);
    if (i < MAXT) responded[i] = (pid_t)syscall(SYS_gettid);
    errno = saved;
}

int sixgate_drop_signal(void) { return SIGRTMIN + 6; }

static int has_responded(pid_t tid) {
    int n = atomic_load(&nresponded);
    for (int i = 0; i < n && i < MAXT; i++) if (responded[i] == tid) return 1;
    return 0;
}

/* Runs the current step on every other thread: the signal goes to each thread of /proc/self/task
   that has not answered yet, again on every pass (a thread inside pthread_create or posix_spawn
   blocks every signal for a moment; one made meanwhile shows up on the next pass). After about
   2 s the threads still silent are left: libdispatch's workers block every signal for good. A
   signal still pending then runs the step later, which is harmless (the handler stays installed). */
static int step_others(int sig) {
    pid_t pid = getpid(), self = (pid_t)syscall(SYS_gettid);
    atomic_store(&nresponded, 0);
    struct timespec ms = { 0, 1000000 };
    for (int pass = 0; pass < 40; pass++) {
        DIR *d = opendir("/proc/self/task");
        if (!d) return -1;
        int waiting = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            pid_t tid = (pid_t)atoi(e->d_name);
            if (tid == self || has_responded(tid)) continue;
            waiting++;
            if (pass == 0 || pass % 5 == 0) syscall(SYS_tgkill, pid, tid, sig);
        }
        closedir(d);
        if (waiting == 0) break;
        for (int w = 0; w < 50; w++) nanosleep(&ms, NULL);
    }
    if (atomic_load(&failed) != 0) { errno = EPERM; return -1; }
    return 0;
}

int sixgate_drop_all_threads(uint32_t uid, uint32_t gid, uint64_t keep, int change_ids) {
    plan.uid = uid; plan.gid = gid; plan.keep = keep; plan.change_ids = change_ids;
    atomic_store(&failed, 0);
    int sig = sixgate_drop_signal(), result = 0;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = step_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old) != 0) return -1;
    sigset_t unblock, saved;
    sigemptyset(&unblock);
    sigaddset(&unblock, sig);
    pthread_sigmask(SIG_UNBLOCK, &unblock, &saved);
    if (change_ids) {
        plan.phase = 1;
        if (step_others(sig) != 0 || step_this_thread() != 0) result = -1;
        /* glibc applies these to every thread: those that took step 1 keep what they have, those
           that block the signal become the user without any capability. */
        if (result == 0 && (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)) result = -1;
    }
    if (result == 0) {
        plan.phase = 3;
        if (step_others(sig) != 0 || step_this_thread() != 0) result = -1;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    (void)old;   /* the handler stays: a signal still pending for a silent thread must not kill the process */
    return result;
}
