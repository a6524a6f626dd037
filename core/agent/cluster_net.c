/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster kernels: a network namespace on the session's bridge, /etc/hosts, the SSH keypair. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log/log.h"
#include "util/file.h"
#include "util/strerror.h"

/*
 * docs/cluster-sessions.md. The manager sends "cluster": {mode, size, subnet,
 * hosts: [{hostname, role, idx, address, agent_host, kernel_id}], ssh}. Here, per
 * kernel: a named netns baic-<kernel id> with eth0 (a veth whose other end is on
 * the session's bridge bc<session id prefix>, which holds the subnet's .1), the
 * kernel's address /24 and a default route via .1. The kernels of the session on
 * other agents are reached by routing their /32 to that agent's host address; the
 * bridge answers ARP for them (proxy_arp) and IPv4 forwarding is switched on. The
 * `ip` commands are short and run synchronously on the loop thread.
 */

extern char **environ;

static int run_ip(char *const argv[], char *msg, size_t msglen) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, "ip", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        snprintf(msg, msglen, "cluster network: cannot run ip: %s", strerror(rc));
        return -rc;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        size_t o = (size_t)snprintf(msg, msglen, "cluster network: failed:");
        for (int i = 0; argv[i] != NULL && o < msglen; i++)
            o += (size_t)snprintf(msg + o, msglen - o, " %s", argv[i]);
        return BAIC_EINTERNAL;
    }
    return 0;
}

#define IP(...)                                                                                \
    do {                                                                                       \
        char *const av_[] = {"ip", __VA_ARGS__, NULL};                                         \
        if ((rc = run_ip(av_, msg, msglen)) != 0)                                              \
            return rc;                                                                         \
    } while (0)

static int link_exists(char *name) {
    char msg[64];
    char *const argv[] = {"ip", "link", "show", "dev", name, NULL};
    return run_ip(argv, msg, sizeof msg) == 0;
}

static void write_proc(const char *path, const char *v) {
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fputs(v, f);
    fclose(f);
}

/* 10 hex digits of a UUID (dashes skipped). */
static void hex10(const char *id, char out[11]) {
    size_t o = 0;
    for (; *id && o < 10; id++)
        if (*id != '-')
            out[o++] = *id;
    out[o] = '\0';
}

static const json_t *cluster_of(const agent_kernel_t *k) {
    const json_t *c = json_object_get(k->create, "cluster");
    return json_is_object(c) && json_is_array(json_object_get(c, "hosts")) ? c : NULL;
}

static const json_t *me_in(const json_t *c, const char *kid) {
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(c, "hosts"), i, h) {
        const char *id = json_string_value(json_object_get(h, "kernel_id"));
        if (id != NULL && strcmp(id, kid) == 0)
            return h;
    }
    return NULL;
}

static int write_file(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int rc = baic_write_all(fd, text, strlen(text));
    if (rc == 0 && fchmod(fd, mode) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int setup_net(agent_kernel_t *k, const json_t *c, const json_t *me, char *msg,
                     size_t msglen) {
    const char *subnet = json_string_value(json_object_get(c, "subnet"));
    const char *addr = json_string_value(json_object_get(me, "address"));
    const char *myhost = json_string_value(json_object_get(me, "agent_host"));
    unsigned a1, a2, a3;
    if (subnet == NULL || addr == NULL || sscanf(subnet, "%u.%u.%u.0/24", &a1, &a2, &a3) != 3 ||
        a1 > 255 || a2 > 255 || a3 > 255) {
        snprintf(msg, msglen, "cluster: no subnet or address for kernel %s", k->id);
        return BAIC_EBAD_INPUT;
    }
    char ns[64], br[16], vh[16], vp[16], s10[11], k10[11], gw[32], gwcidr[40], cidr[40];
    char path[128];
    hex10(k->session_id, s10);
    hex10(k->id, k10);
    snprintf(ns, sizeof ns, "baic-%.40s", k->id);
    snprintf(br, sizeof br, "bc%s", s10);
    snprintf(vh, sizeof vh, "vk%s", k10);
    snprintf(vp, sizeof vp, "vp%s", k10);
    snprintf(gw, sizeof gw, "%u.%u.%u.1", a1, a2, a3);
    snprintf(gwcidr, sizeof gwcidr, "%s/24", gw);
    snprintf(cidr, sizeof cidr, "%.20s/24", addr);
    int rc;
    if (!link_exists(br)) /* not /sys/class/net: sysfs may show another namespace's */
        IP("link", "add", br, "type", "bridge");
    IP("addr", "replace", gwcidr, "dev", br);
    IP("link", "set", br, "up");
    snprintf(path, sizeof path, "/proc/sys/net/ipv4/conf/%s/proxy_arp", br);
    write_proc(path, "1");
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    if (access(path, F_OK) == 0)
        return 0; /* a restart of the same kernel: its namespace is ready */
    IP("netns", "add", ns);
    IP("link", "add", vh, "type", "veth", "peer", "name", vp);
    IP("link", "set", vh, "master", br, "up");
    IP("link", "set", vp, "netns", ns);
    IP("-n", ns, "link", "set", vp, "name", "eth0");
    IP("-n", ns, "addr", "add", cidr, "dev", "eth0");
    IP("-n", ns, "link", "set", "eth0", "up");
    IP("-n", ns, "link", "set", "lo", "up");
    IP("-n", ns, "route", "add", "default", "via", gw);
    /* The kernels on other agents: through the agent that carries them. */
    size_t i;
    json_t *h;
    int remote = 0;
    json_array_foreach(json_object_get(c, "hosts"), i, h) {
        const char *ah = json_string_value(json_object_get(h, "agent_host"));
        const char *ka = json_string_value(json_object_get(h, "address"));
        if (ah == NULL || ka == NULL || myhost == NULL || strcmp(ah, myhost) == 0)
            continue;
        char dst[40], via[64];
        snprintf(dst, sizeof dst, "%.20s/32", ka);
        snprintf(via, sizeof via, "%s", ah);
        IP("route", "replace", dst, "via", via);
        remote = 1;
    }
    if (remote)
        write_proc("/proc/sys/net/ipv4/ip_forward", "1");
    return 0;
}

int agent_cluster_prepare(agent_kernel_t *k, const baic_needs_builder_t *b, char *netns,
                          size_t netns_len, char *msg, size_t msglen) {
    netns[0] = '\0';
    const json_t *c = cluster_of(k);
    if (c == NULL)
        return 0;
    const json_t *me = me_in(c, k->id);
    if (me == NULL) {
        snprintf(msg, msglen, "cluster: kernel %s is not in the session's host list", k->id);
        return BAIC_EBAD_INPUT;
    }
    char bundle[4096], path[4200];
    agent_bundle_path(k->a, k->id, bundle, sizeof bundle);
    if (mkdir(bundle, 0700) != 0 && errno != EEXIST) {
        snprintf(msg, msglen, "bundle dir %s: %s", bundle, strerror(errno));
        return -errno;
    }
    /* /etc/hosts: every member of the session by hostname. */
    size_t cap = 256 + 96 * json_array_size(json_object_get(c, "hosts"));
    char *hosts = malloc(cap);
    if (hosts == NULL)
        return UV_ENOMEM;
    size_t o = (size_t)snprintf(hosts, cap, "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(c, "hosts"), i, h) {
        const char *hn = json_string_value(json_object_get(h, "hostname"));
        const char *ad = json_string_value(json_object_get(h, "address"));
        if (hn != NULL && ad != NULL && o < cap)
            o += (size_t)snprintf(hosts + o, cap - o, "%.40s\t%.40s\n", ad, hn);
    }
    snprintf(path, sizeof path, "%s/hosts", bundle);
    int rc = write_file(path, hosts, 0644);
    free(hosts);
    if (rc == 0)
        rc = b->add_mount(b->needs, path, "/etc/hosts", 1);
    /* The session's keypair: id_<type>, id_<type>.pub and authorized_keys. */
    const json_t *ssh = json_object_get(c, "ssh");
    const char *priv = json_string_value(json_object_get(ssh, "private_key"));
    const char *pub = json_string_value(json_object_get(ssh, "public_key"));
    const char *type = json_string_value(json_object_get(ssh, "type"));
    int type_ok = type != NULL && strlen(type) < 16 &&
                  strspn(type, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(type);
    if (rc == 0 && priv != NULL && pub != NULL && type_ok) {
        char dir[4200], f[4300], line[8192];
        snprintf(dir, sizeof dir, "%s/ssh", bundle);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            rc = -errno;
        snprintf(f, sizeof f, "%s/id_%s", dir, type);
        if (rc == 0)
            rc = write_file(f, priv, 0600);
        snprintf(line, sizeof line, "%s\n", pub);
        snprintf(f, sizeof f, "%s/id_%s.pub", dir, type);
        if (rc == 0)
            rc = write_file(f, line, 0644);
        snprintf(f, sizeof f, "%s/authorized_keys", dir);
        if (rc == 0)
            rc = write_file(f, line, 0600);
        if (rc == 0)
            rc = b->add_mount(b->needs, dir, "/home/work/.ssh", 0);
    }
    if (rc != 0) {
        snprintf(msg, msglen, "cluster files: %s", baic_strerror(rc));
        return rc;
    }
    rc = setup_net(k, c, me, msg, msglen);
    if (rc != 0) {
        agent_cluster_teardown(k);
        return rc;
    }
    snprintf(netns, netns_len, "/run/netns/baic-%.40s", k->id);
    return 0;
}

void agent_cluster_teardown(agent_kernel_t *k) {
    const json_t *c = cluster_of(k);
    if (c == NULL)
        return;
    char ns[64], br[16], s10[11], path[128], msg[256];
    hex10(k->session_id, s10);
    snprintf(ns, sizeof ns, "baic-%.40s", k->id);
    snprintf(br, sizeof br, "bc%s", s10);
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    if (access(path, F_OK) == 0) {
        char *const del[] = {"ip", "netns", "del", ns, NULL}; /* its veth goes with it */
        if (run_ip(del, msg, sizeof msg) != 0)
            BAIC_LOG_W("cluster_net_teardown_failed", "kernel=%s msg=\"%s\"", k->id, msg);
    }
    /* The last kernel of the session here takes the bridge and the routes along. */
    for (const agent_kernel_t *o = k->a->kernels; o != NULL; o = o->next)
        if (o != k && strcmp(o->session_id, k->session_id) == 0)
            return;
    if (link_exists(br)) {
        char *const del[] = {"ip", "link", "del", br, NULL};
        if (run_ip(del, msg, sizeof msg) != 0)
            BAIC_LOG_W("cluster_net_teardown_failed", "kernel=%s msg=\"%s\"", k->id, msg);
    }
    const json_t *me = me_in(c, k->id);
    const char *myhost = json_string_value(json_object_get(me, "agent_host"));
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(c, "hosts"), i, h) {
        const char *ah = json_string_value(json_object_get(h, "agent_host"));
        const char *ka = json_string_value(json_object_get(h, "address"));
        if (ah == NULL || ka == NULL || myhost == NULL || strcmp(ah, myhost) == 0)
            continue;
        char dst[40];
        snprintf(dst, sizeof dst, "%.20s/32", ka);
        char *const del[] = {"ip", "route", "del", dst, NULL};
        run_ip(del, msg, sizeof msg); /* gone already when another session's kernel took it */
    }
}
