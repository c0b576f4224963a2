/* process_fs.c: file-system helpers of the process runtime (process_int.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/process_int.h"

/* mkdir with exactly mode (not narrowed by the umask: a root umask of 077
   would lock the postgres user out). 0, or -1 with errno (EEXIST too). */
static int mkdir_mode(const char *path, mode_t mode) {
  if (mkdir(path, mode) != 0) return -1;
  return chmod(path, mode);
}

/* mkdir -p with mode for the missing parts. 0 or -1 (errno set). */
int tsvc__proc_mkdir_p(const char *path, mode_t mode) {
  char buf[PATH_MAX];
  if (tsvc_strlcpy(buf, path, sizeof buf) >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir_mode(buf, mode) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir_mode(buf, mode) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(buf, &st) != 0) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* path with mode, its missing parents with 0755 (the user a service runs
   as must pass through them). 0 or -1 (errno set). */
int tsvc__proc_mkdir_private(const char *path, mode_t mode) {
  char parent[PATH_MAX];
  if (tsvc_strlcpy(parent, path, sizeof parent) >= sizeof parent) {
    errno = ENAMETOOLONG;
    return -1;
  }
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    if (tsvc__proc_mkdir_p(parent, 0755) != 0) return -1;
  }
  return tsvc__proc_mkdir_p(path, mode);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf path (a directory of ours). */
int tsvc__proc_rmtree(const char *path) {
  if (access(path, F_OK) != 0) return 0;
  return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Whether dir exists (1), is missing (0), or is not empty (2). */
int tsvc__proc_dir_state(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : 2;
  int st = 1;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) st = 2;
  closedir(d);
  return st;
}

/* True when user uid/gid (no supplementary groups) can traverse every
   directory on the way to path; else the first that stops it in bad. */
bool tsvc__proc_can_reach(const char *path, uid_t uid, gid_t gid, char *bad, size_t len) {
  char buf[PATH_MAX];
  tsvc_strlcpy(buf, path, sizeof buf);
  for (char *p = buf + 1;; p++) {
    bool end = *p == '\0';
    if (*p == '/' || end) {
      char c = *p;
      *p = '\0';
      struct stat st;
      if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
        mode_t need = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
        if (!(st.st_mode & need)) {
          tsvc_strlcpy(bad, buf, len);
          return false;
        }
      }
      *p = c;
    }
    if (end) break;
  }
  return true;
}

/* Write text to path, mode 0600 (any older file is replaced). */
int tsvc__proc_write_private(const char *path, const char *text, uid_t uid, gid_t gid,
                             bool chown_it) {
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  bool ok = write(fd, text, n) == (ssize_t)n;
  if (chown_it && fchown(fd, uid, gid) != 0) ok = false;
  if (close(fd) != 0) ok = false;
  if (!ok) unlink(path);
  return ok ? 0 : -1;
}
