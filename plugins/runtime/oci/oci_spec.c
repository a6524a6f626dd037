/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/oci: builds a kernel's OCI runtime config.json from a baic container spec. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <jansson.h>

#include "oci.h"

/* Docker's default set less MKNOD and NET_RAW: a kernel needs neither. */
static const char *const spec_caps[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_SETFCAP", NULL};

/*
 * Denied with EPERM on top of the dropped capabilities: they reach the kernel's
 * keyring, module loader, mount table, namespaces, tracing and clock, which a user's
 * code has no business touching and where most container escapes started.
 */
static const char *const spec_denied[] = {
    "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "bpf", "perf_event_open", "unshare", "setns",
    "open_by_handle_at", "userfaultfd", "acct", "quotactl", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "syslog",
    "vhangup", "lookup_dcookie", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr", "nfsservctl", "uselib", NULL};

#define CLONE_NEWUSER_FLAG 0x10000000ULL

static json_t *spec_strv(const char *const *v) {
    json_t *a = json_array();
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *spec_seccomp(void) {
    json_t *calls = json_array();
    json_array_append_new(calls, json_pack("{s:o, s:s, s:i}", "names", spec_strv(spec_denied),
                                           "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM));
    /* clone3 hides its flags in memory a filter cannot read: ENOSYS makes libc fall
     * back to clone, whose flags are checked below (no new user namespaces). */
    json_array_append_new(calls, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action",
                                           "SCMP_ACT_ERRNO", "errnoRet", ENOSYS));
    json_array_append_new(
        calls, json_pack("{s:[s], s:s, s:i, s:[{s:i, s:I, s:I, s:s}]}", "names", "clone",
                         "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM, "args", "index", 0,
                         "value", (json_int_t)CLONE_NEWUSER_FLAG, "valueTwo",
                         (json_int_t)CLONE_NEWUSER_FLAG, "op", "SCMP_CMP_MASKED_EQ"));
    return json_pack("{s:s, s:[s,s,s], s:o}", "defaultAction", "SCMP_ACT_ALLOW",
                     "architectures", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                     "syscalls", calls);
}

static json_t *spec_mount(const char *dst, const char *type, const char *src,
                          const char *opts_csv) {
    json_t *o = json_array();
    char buf[512];
    snprintf(buf, sizeof buf, "%s", opts_csv);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save))
        json_array_append_new(o, json_string(t));
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                     "options", o);
}

static int spec_has_env(const char *const *env, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return 1;
    return 0;
}

static int spec_bad(int *err, char *errbuf, size_t errlen, const char *why) {
    snprintf(errbuf, errlen, "%s", why);
    *err = BAIC_EBAD_INPUT;
    return -1;
}

char *oci_spec_build(const oci_conf_t *c, const baic_container_spec_t *spec,
                     const oci_spec_paths_t *p, int *err, char *errbuf, size_t errlen) {
    char buf[OCI_PATH_MAX + 64];
    json_t *root = NULL;
    char *out = NULL;
    *err = 0;

    /* ---- process ---- */
    json_t *env = spec_strv(spec->env);
    if (!spec_has_env(spec->env, "PATH"))
        json_array_append_new(env, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    if (!spec_has_env(spec->env, "HOME"))
        json_array_append_new(env, json_string("HOME=/home/work"));
    if (!spec_has_env(spec->env, "LANG"))
        json_array_append_new(env, json_string("LANG=C.UTF-8"));
    if (!spec_has_env(spec->env, "BACKENDAI_KERNEL_ID")) {
        snprintf(buf, sizeof buf, "BACKENDAI_KERNEL_ID=%s", spec->id);
        json_array_append_new(env, json_string(buf));
    }
    if (spec->image != NULL && !spec_has_env(spec->env, "BACKENDAI_KERNEL_IMAGE")) {
        snprintf(buf, sizeof buf, "BACKENDAI_KERNEL_IMAGE=%s", spec->image);
        json_array_append_new(env, json_string(buf));
    }
    json_t *gids = json_array();
    for (size_t i = 0; i < spec->n_extra_gids; i++)
        json_array_append_new(gids, json_integer(spec->extra_gids[i]));
    json_t *user = json_pack("{s:i, s:i}", "uid", (int)spec->uid, "gid", (int)spec->gid);
    if (json_array_size(gids) > 0)
        json_object_set(user, "additionalGids", gids);
    json_decref(gids);
    json_t *caps = json_pack("{s:o, s:o, s:o}", "bounding", spec_strv(spec_caps), "effective",
                             spec_strv(spec_caps), "permitted", spec_strv(spec_caps));
    json_t *process = json_pack(
        "{s:b, s:o, s:o, s:o, s:s, s:o, s:b}", "terminal", 0, "user", user, "args",
        spec_strv(spec->argv), "env", env, "cwd", spec->cwd != NULL ? spec->cwd : "/home/work",
        "capabilities", caps, "noNewPrivileges", 1);
    /* No rlimits: the kernel inherits the agent's, which an unprivileged-looking host
     * (a container itself) may not let us raise. */

    /* ---- mounts ---- */
    json_t *mounts = json_array();
    json_array_append_new(mounts, spec_mount("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, spec_mount("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(mounts, spec_mount("/dev/pts", "devpts", "devpts",
                                             "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620"));
    snprintf(buf, sizeof buf, "nosuid,noexec,nodev,mode=1777,size=%lld",
             (long long)(spec->shm_bytes > 0 ? spec->shm_bytes : 64LL << 20));
    json_array_append_new(mounts, spec_mount("/dev/shm", "tmpfs", "shm", buf));
    json_array_append_new(mounts, spec_mount("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    if (spec->net_mode == BAIC_RT_NET_HOST)
        json_array_append_new(mounts, spec_mount("/sys", "bind", "/sys", "rbind,nosuid,noexec,nodev,ro"));
    else
        json_array_append_new(mounts, spec_mount("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
    json_array_append_new(mounts, spec_mount("/tmp", "tmpfs", "tmpfs", "nosuid,nodev,mode=1777"));
    if (p->home != NULL)
        json_array_append_new(mounts, spec_mount("/home/work", "bind", p->home, "rbind,rw,nosuid,nodev"));
    if (c->kernel_runner[0] != '\0') {
        struct stat st;
        /* Read-only so user code cannot replace the runner the agent talks to. */
        if (stat(c->kernel_runner, &st) == 0)
            json_array_append_new(mounts, spec_mount(c->kernel_runner_target, "bind",
                                                     c->kernel_runner, "bind,ro,nosuid,nodev"));
    }
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const baic_rt_mount_t *m = spec->mounts[i];
        if (m == NULL || m->target == NULL || m->target[0] != '/' || m->type == NULL) {
            spec_bad(err, errbuf, errlen, "mount without absolute target or type");
            goto fail;
        }
        if (strcmp(m->type, "bind") == 0) {
            if (m->source == NULL || m->source[0] != '/') {
                spec_bad(err, errbuf, errlen, "bind mount source must be absolute");
                goto fail;
            }
            snprintf(buf, sizeof buf, "rbind,%s,nosuid,nodev%s%s", m->readonly ? "ro" : "rw",
                     m->options ? "," : "", m->options ? m->options : "");
            json_array_append_new(mounts, spec_mount(m->target, "bind", m->source, buf));
        } else if (strcmp(m->type, "tmpfs") == 0) {
            snprintf(buf, sizeof buf, "nosuid,nodev%s%s%s", m->readonly ? ",ro" : "",
                     m->options ? "," : "", m->options ? m->options : "");
            json_array_append_new(mounts, spec_mount(m->target, "tmpfs",
                                                     m->source ? m->source : "tmpfs", buf));
        } else {
            spec_bad(err, errbuf, errlen, "mount type must be bind or tmpfs");
            goto fail;
        }
    }

    /* ---- linux ---- */
    json_t *ns = json_pack("[{s:s},{s:s},{s:s},{s:s}]", "type", "pid", "type", "ipc", "type",
                           "uts", "type", "mount");
    if (spec->net_mode == BAIC_RT_NET_JOIN) {
        if (spec->netns_path == NULL) {
            json_decref(ns);
            spec_bad(err, errbuf, errlen, "net_mode JOIN without netns_path");
            goto fail;
        }
        json_array_append_new(ns, json_pack("{s:s, s:s}", "type", "network", "path", spec->netns_path));
    } else if (spec->net_mode != BAIC_RT_NET_HOST) {
        /* PRIVATE and NONE: a fresh namespace; the runtime brings up lo only. */
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));
    }
    json_t *res = json_object();
    json_t *devrules = json_array();
    json_array_append_new(devrules, json_pack("{s:b, s:s}", "allow", 0, "access", "rwm"));
    json_t *devices = json_array();
    for (size_t i = 0; i < spec->n_devices; i++) {
        const baic_rt_device_t *d = spec->devices[i];
        struct stat st;
        if (d == NULL || d->host_path == NULL || stat(d->host_path, &st) != 0 ||
            !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
            json_decref(ns);
            json_decref(res);
            json_decref(devrules);
            json_decref(devices);
            spec_bad(err, errbuf, errlen, "device is not a character or block device");
            goto fail;
        }
        const char *t = S_ISCHR(st.st_mode) ? "c" : "b";
        json_array_append_new(devices, json_pack("{s:s, s:s, s:I, s:I, s:i}", "path",
                                                 d->container_path ? d->container_path : d->host_path,
                                                 "type", t, "major", (json_int_t)major(st.st_rdev),
                                                 "minor", (json_int_t)minor(st.st_rdev),
                                                 "fileMode", (int)(st.st_mode & 0777)));
        json_array_append_new(devrules, json_pack("{s:b, s:s, s:I, s:I, s:s}", "allow", 1, "type", t,
                                                  "major", (json_int_t)major(st.st_rdev), "minor",
                                                  (json_int_t)minor(st.st_rdev), "access",
                                                  d->access ? d->access : "rwm"));
    }
    for (size_t i = 0; i < spec->n_cgroup_rules; i++) {
        const baic_rt_cgroup_rule_t *r = spec->cgroup_rules[i];
        if (r == NULL)
            continue;
        char t[2] = {r->type == 'b' ? 'b' : 'c', '\0'};
        json_t *rule = json_pack("{s:b, s:s, s:s}", "allow", 1, "type", t, "access",
                                 r->access ? r->access : "rwm");
        if (r->major >= 0)
            json_object_set_new(rule, "major", json_integer(r->major));
        if (r->minor >= 0)
            json_object_set_new(rule, "minor", json_integer(r->minor));
        json_array_append_new(devrules, rule);
    }
    json_object_set_new(res, "devices", devrules);
    json_t *cpu = json_object();
    if (spec->cpu_limit > 0) {
        const int64_t period = 100000;
        int64_t quota = spec->cpu_limit * period / 1000000;
        json_object_set_new(cpu, "quota", json_integer(quota < 1000 ? 1000 : quota));
        json_object_set_new(cpu, "period", json_integer(period));
    }
    if (spec->cpuset != NULL && spec->cpuset[0] != '\0')
        json_object_set_new(cpu, "cpus", json_string(spec->cpuset));
    if (json_object_size(cpu) > 0)
        json_object_set_new(res, "cpu", cpu);
    else
        json_decref(cpu);
    if (spec->pids_max > 0)
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)spec->pids_max));
    /* memory: the limit sits on the plugin's cgroup above this one (oci_cgroup.c). */

    json_t *masked = json_pack("[s,s,s,s,s,s,s,s,s]", "/proc/acpi", "/proc/kcore", "/proc/keys",
                               "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                               "/proc/sched_debug", "/proc/scsi", "/sys/firmware");
    json_t *ro = json_pack("[s,s,s,s,s,s]", "/proc/asound", "/proc/bus", "/proc/fs",
                           "/proc/irq", "/proc/sys", "/proc/sysrq-trigger");
    json_t *linux_ = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "cgroupsPath",
                               p->cgroups_path, "namespaces", ns, "resources", res, "devices",
                               devices, "seccomp", spec_seccomp(), "maskedPaths", masked,
                               "readonlyPaths", ro);

    json_t *ann = json_object();
    for (size_t i = 0; spec->labels != NULL && spec->labels[i] != NULL; i++) {
        const char *eq = strchr(spec->labels[i], '=');
        if (eq == NULL || eq == spec->labels[i])
            continue;
        char key[256];
        size_t kl = (size_t)(eq - spec->labels[i]);
        if (kl >= sizeof key)
            continue;
        memcpy(key, spec->labels[i], kl);
        key[kl] = '\0';
        json_object_set_new(ann, key, json_string(eq + 1));
    }

    root = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o, s:o}", "ociVersion", "1.0.2",
                     "process", process, "root", "path", p->rootfs, "readonly",
                     spec->readonly_rootfs ? 1 : 0, "hostname",
                     spec->hostname != NULL ? spec->hostname : spec->id, "mounts", mounts,
                     "linux", linux_, "annotations", ann);
    mounts = NULL;
    process = NULL;
    if (root == NULL) {
        *err = BAIC_EINTERNAL;
        snprintf(errbuf, errlen, "config.json assembly failed");
        return NULL;
    }
    out = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    if (out == NULL)
        *err = UV_ENOMEM;
    return out;

fail:
    json_decref(process);
    json_decref(mounts);
    return NULL;
}
