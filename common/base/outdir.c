/* outdir.c — see outdir.h. */
#define _GNU_SOURCE
#include "outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static int force_replace;

void outdir_set_force(int force) {
    force_replace = force;
}

int outdir_force(void) {
    return force_replace;
}

static int in_list(const char *name, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (strcmp(name, list[i]) == 0) return 1;
    return 0;
}

/* Entries cherry writes into a model directory or a checkpoint root (outdir.h): the
 * config and weights of a model or an adapter, the side files (outdir.h), the state
 * of a checkpoint, and the directories below. */
static const char *const weight_files[] = {"config.json", "model.safetensors", "adapter_config.json",
                                           "adapter_model.safetensors", NULL};
const char *const outdir_side_files[] = {"tokenizer.json",
                                         "tokenizer_config.json",
                                         "special_tokens_map.json",
                                         "generation_config.json",
                                         "chat_template.jinja",
                                         "vocab.json",
                                         "merges.txt",
                                         "added_tokens.json",
                                         NULL};
static const char *const state_files[] = {"optimizer.safetensors", "trainer_state.json", "ppo_state.safetensors", NULL};
static const char *const known_dirs[] = {"value_model", "model.tmp", NULL};

int outdir_is_model_file(const char *name) {
    return in_list(name, weight_files) || in_list(name, outdir_side_files);
}

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* NAME.tmp-PID-N (util.c sibling_temp_name) */
static int is_cherry_temp(const char *name) {
    const char *t = strstr(name, ".tmp-");
    if (!t || t == name) return 0;
    const char *pid = t + 5, *dash = strchr(pid, '-');
    if (!dash) return 0;
    char buf[32];
    size_t n = (size_t)(dash - pid);
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, pid, n);
    buf[n] = 0;
    return all_digits(buf) && all_digits(dash + 1);
}

/* 1 when every entry of the open directory D is one cherry writes and at least one
 * of them marks a model directory or checkpoint root (or D is empty); else 0 and
 * *foreign names the first entry that is not (or is empty when the marks are
 * missing). */
static int dir_is_cherrys(DIR *d, char *foreign, size_t cap) {
    struct dirent *de;
    int entries = 0, marked = 0;
    foreign[0] = 0;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
        entries++;
        if (!strcmp(n, "config.json") || !strcmp(n, "adapter_config.json")) marked = 1;
        if (!strncmp(n, "checkpoint-", 11) && all_digits(n + 11)) {
            marked = 1;
            continue;
        }
        if (outdir_is_model_file(n) || in_list(n, state_files) || in_list(n, known_dirs) || is_cherry_temp(n)) continue;
        snprintf(foreign, cap, "%s", n);
        return 0;
    }
    return entries == 0 || marked;
}

int outdir_check(const char *path, Error *e) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        return err_set(e, EX_CANTCREAT, "%s: cannot inspect: %s", path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return err_set(e, EX_CANTCREAT,
                       "%s: exists and is a symbolic link; refusing to replace it (give the directory it points to)",
                       path);
    if (!S_ISDIR(st.st_mode))
        return err_set(e, EX_CANTCREAT, "%s: exists and is not a directory; refusing to replace it", path);
    if (force_replace) return 0;
    DIR *d = opendir(path);
    if (!d) return err_set(e, EX_CANTCREAT, "%s: cannot read: %s", path, strerror(errno));
    char foreign[256];
    int ok = dir_is_cherrys(d, foreign, sizeof foreign);
    closedir(d);
    if (ok) return 0;
    if (foreign[0])
        return err_set(e, EX_CANTCREAT,
                       "%s: exists and is not a directory cherry wrote (it holds \"%s\"); refusing to replace it "
                       "(--force replaces it)",
                       path, foreign);
    return err_set(e, EX_CANTCREAT,
                   "%s: exists and is not a model directory or checkpoint root; refusing to replace it (--force "
                   "replaces it)",
                   path);
}

/* ---- the lock ---- */
static char *locked_path; /* the OUT whose lock this process holds */
static int lock_fd = -1;

/* ".NAME.lock" beside PATH (trailing slashes ignored; "." and ".." resolved). */
static char *lock_file_name(const char *path) {
    char *p = xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    const char *base = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
    if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(p, "/")) {
        char *r = realpath(p, NULL);
        if (r) {
            free(p);
            p = r;
        }
    }
    char *slash = strrchr(p, '/');
    const char *dir = ".", *name = p;
    if (slash) {
        *slash = 0;
        dir = slash == p ? "/" : p;
        name = slash + 1;
    }
    size_t m = strlen(dir) + strlen(name) + 16;
    char *out = xmalloc(m);
    snprintf(out, m, "%s/.%s.lock", dir, name);
    free(p);
    return out;
}

int outdir_lock(const char *path, Error *e) {
    char *lf = lock_file_name(path);
    if (locked_path && strcmp(locked_path, lf) == 0) {
        free(lf);
        return 0;
    }
    int fd = open(lf, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int code = err_set(e, EX_CANTCREAT, "%s: cannot create the lock file %s: %s", path, lf, strerror(errno));
        free(lf);
        return code;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        int code =
            busy ? err_set(e, EX_TEMPFAIL, "%s: another run is writing it (%s is locked); try again later", path, lf)
                 : err_set(e, EX_CANTCREAT, "%s: cannot lock %s: %s", path, lf, strerror(errno));
        close(fd);
        free(lf);
        return code;
    }
    /* a lock taken earlier for another output stays held until exit */
    free(locked_path);
    lock_fd = fd;
    locked_path = lf;
    return 0;
}

int outdir_claim(const char *path, Error *e) {
    int rc = outdir_lock(path, e);
    return rc ? rc : outdir_check(path, e);
}
