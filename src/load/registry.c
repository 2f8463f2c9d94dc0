/*
 * registry.c — tok_registry_load: reads every tokenizer the caller asked for and owns the
 * result.
 *
 * Sources: tiktoken manifests (built into the binary, or DIR/<name>.manifest) with their rank
 * files, and Hugging Face tokenizer.json files. Each rank file and each tokenizer.json is
 * read and turned into tables on its own thread, so start-up with several takes about as
 * long as the largest one rather than the sum. A rank file named by several manifests
 * (p50k_base and p50k_edit) is loaded once and shared.
 *
 * Nothing here runs after start-up; the registry is immutable once returned.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load/load.h"
#include "common/cpu.h"

#define MAX_RANK_FILE_BYTES ((size_t)1 << 30)

tok_err tok__read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                       tok_error *err)
{
  FILE *f = fopen(path, "rb");
  if (!f) return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: %s", path, strerror(errno));
  tok_buf buf = {.limit = max_bytes};
  tok_err rc = TOK_OK;
  for (;;) {
    if ((rc = tok_buf_reserve(&buf, 1 << 16)) != TOK_OK) break;
    size_t got = fread(buf.data + buf.len, 1, buf.cap - buf.len, f);
    buf.len += got;
    if (got == 0) break;
  }
  if (rc == TOK_OK && ferror(f)) rc = TOK_EIO;
  fclose(f);
  if (rc != TOK_OK) {
    tok_buf_free(&buf);
    return tok__fail(err, rc, TOK_NO_POS, TOK_NO_POS, "%s: %s", path,
                     rc == TOK_ELIMIT ? "file too large" : "read failed");
  }
  /* a terminating NUL that is not part of the data, for parsers that like one */
  if (tok_buf_append(&buf, "", 1) != TOK_OK) {
    tok_buf_free(&buf);
    return tok__nomem(err);
  }
  *data = buf.data;
  *len = buf.len - 1;
  return TOK_OK;
}

/* Reads DIR/NAME, or the embedded copy when dir is NULL. *data is owned by the caller
 * (malloc'd) unless *embedded is set. */
static tok_err read_source(const char *dir, const char *name, const char **data, size_t *len,
                           tok__embedded_file *embedded, tok_error *err)
{
  if (!dir) {
    if (!tok__embedded_find(name, embedded))
      return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: not built into this binary", name);
    *data = embedded->data;
    *len = embedded->len;
    return TOK_OK;
  }
  embedded->data = NULL;
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s/%s: path too long", dir, name);
  char *buf;
  tok_err rc = tok__read_file(path, MAX_RANK_FILE_BYTES, &buf, len, err);
  if (rc == TOK_OK) *data = buf;
  return rc;
}

static void release_source(const char *data, const tok__embedded_file *embedded)
{
  if (embedded->data) tok__embedded_release(embedded);
  else free((void *)data);
}

static bool name_in_list(const char *list, const char *name)
{
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len == n && memcmp(p, name, n) == 0) return true;
    if (!comma) break;
    p = comma + 1;
  }
  return false;
}

static bool manifest_wanted(const tok__manifest *m, const char *names)
{
  if (!names || !*names || name_in_list(names, m->name)) return true;
  for (size_t i = 0; m->aliases[i]; i++)
    if (name_in_list(names, m->aliases[i])) return true;
  return false;
}

void tok_registry_free(tok_registry *reg)
{
  if (!reg) return;
  for (size_t i = 0; i < reg->n_encs; i++) tok__encoding_free(reg->encs[i]);
  for (size_t i = 0; i < reg->n_models; i++) tok__model_free(reg->models[i]);
  free(reg->cache_dir);
  free(reg->cache_refused);
  free(reg->encs);
  free(reg->models);
  free(reg);
}

typedef struct warm_job {
  const tok_registry *reg;
  atomic_size_t next;
} warm_job;

static void *warm_some(void *arg)
{
  warm_job *job = arg;
  for (size_t i; (i = atomic_fetch_add(&job->next, 1)) < job->reg->n_models;) {
    const tok__model *m = job->reg->models[i];
    if (!m->byte_level || atomic_load(&m->bt_state) != 0) continue;
    if (tok__bt_get(m, true)) tok__bt_cache_store(m, job->reg->cache_dir);
  }
  return NULL;
}

void tok_registry_warm(const tok_registry *reg)
{
  /* models whose tables are not ready (not in the built-in image), built one a thread on
   * up to the cores there are */
  size_t todo = 0;
  for (size_t i = 0; i < reg->n_models; i++)
    if (reg->models[i]->byte_level && atomic_load(&reg->models[i]->bt_state) == 0) todo++;
  if (todo == 0) return;
  long cores = tok__cpu_count();
  size_t n_threads = cores > 1 ? (size_t)cores : 1;
  if (n_threads > todo) n_threads = todo;
  if (n_threads > 16) n_threads = 16;
  warm_job job = {.reg = reg};
  pthread_t threads[16];
  size_t started = 0;
  while (started + 1 < n_threads && pthread_create(&threads[started], NULL, warm_some, &job) == 0) started++;
  warm_some(&job);
  for (size_t i = 0; i < started; i++) pthread_join(threads[i], NULL);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The manifest file names to read, sorted; NULL-terminated, free each and the array. */
static tok_err list_manifests(const char *dir, char ***out, size_t *n_out, tok_error *err)
{
  char **names = NULL;
  size_t n = 0;
  if (!dir) {
    for (const char *const *e = tok_embedded_names(); *e; e++) n++;
    names = calloc(n + 1, sizeof *names);
    if (!names) return tok__nomem(err);
    for (size_t i = 0; i < n; i++) {
      size_t len = strlen(tok_embedded_names()[i]) + sizeof ".manifest";
      if (!(names[i] = malloc(len))) goto nomem;
      snprintf(names[i], len, "%s.manifest", tok_embedded_names()[i]);
    }
  } else {
    DIR *d = opendir(dir);
    if (!d) return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d))) {
      size_t len = strlen(de->d_name);
      if (len <= 9 || strcmp(de->d_name + len - 9, ".manifest") != 0) continue;
      char **grown = realloc(names, (n + 2) * sizeof *grown);
      if (!grown) {
        closedir(d);
        goto nomem;
      }
      names = grown;
      names[n + 1] = NULL;
      if (!(names[n] = strdup(de->d_name))) {
        closedir(d);
        goto nomem;
      }
      n++;
    }
    closedir(d);
    if (n == 0) return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: no *.manifest files", dir);
    qsort(names, n, sizeof *names, cmp_str);
  }
  *out = names;
  *n_out = n;
  return TOK_OK;
nomem:
  for (size_t i = 0; names && i < n; i++) free(names[i]);
  free(names);
  return tok__nomem(err);
}

const tok_encoding *tok_registry_find(const tok_registry *reg, const char *name, size_t name_len)
{
  for (size_t i = 0; i < reg->n_encs; i++) {
    const tok_encoding *e = reg->encs[i];
    if (strlen(e->name) == name_len && memcmp(e->name, name, name_len) == 0) return e;
    for (size_t a = 0; e->aliases[a]; a++)
      if (strlen(e->aliases[a]) == name_len && memcmp(e->aliases[a], name, name_len) == 0) return e;
  }
  return NULL;
}

size_t tok_registry_count(const tok_registry *reg) { return reg->n_encs; }

const tok_encoding *tok_registry_at(const tok_registry *reg, size_t i)
{
  return i < reg->n_encs ? reg->encs[i] : NULL;
}

/* ---------------------------------------------------------------------------------------
 * Jobs: one per rank file and one per tokenizer.json, each on its own thread.
 */
typedef struct job {
  /* rank file */
  const char *dir;
  tok__manifest *m; /* the first manifest naming this file */
  char sha256[65];
  /* Hugging Face */
  const tok_tokenizer_source *hf;
  tok_encoding *hf_enc;
  const char *cache_dir;

  tok__model *model;  /* owned by the job until the registry takes it */
  tok__model *shared; /* the same model, once the registry owns it */
  tok_err rc;
  tok_error err;
} job;

static void *job_run(void *arg)
{
  job *j = arg;
  if (j->hf) {
    j->rc = tok__hf_load(j->hf->name, j->hf->path, &j->hf_enc, &j->model, &j->err);
    if (j->rc == TOK_OK) tok__bt_cache_load(j->model, j->cache_dir);
    return NULL;
  }
  const tok__manifest *m = j->m;
  const char *data;
  size_t len;
  tok__embedded_file embedded = {0};
  /* a built-in vocabulary's model comes built from the image, found by its file's sha256
   * (checked against the file when the binary was built) */
  if (!j->dir && m->sha256[0] && (j->model = tok__model_from_image(m->sha256))) {
    snprintf(j->sha256, sizeof j->sha256, "%s", m->sha256);
    j->rc = TOK_OK;
    return NULL;
  }
  if (!j->dir && !tok__embedded_find(m->ranks, &embedded)) {
    j->rc = tok__fail(&j->err, TOK_EIO, TOK_NO_POS, TOK_NO_POS,
                      "%s: built in, but this binary's image has no model for its sha256 %s "
                      "and its rank file is not embedded (rebuild, or load it with --vocab-dir)",
                      m->name, m->sha256[0] ? m->sha256 : "(none)");
    return NULL;
  }
  j->rc = read_source(j->dir, m->ranks, &data, &len, &embedded, &j->err);
  if (j->rc != TOK_OK) return NULL;
  if (j->dir) {
    /* Files from disk are checked; the embedded copies were checked when the binary was
     * built (make vocab-check) and by the test suite. */
    tok__sha256_hex(data, len, j->sha256);
    if (m->sha256[0] && strcmp(j->sha256, m->sha256) != 0) {
      release_source(data, &embedded);
      j->rc = tok__fail(&j->err, TOK_ECHECKSUM, TOK_NO_POS, TOK_NO_POS,
                        "%s/%s: sha256 is %s, manifest of %s expects %s", j->dir, m->ranks,
                        j->sha256, m->name, m->sha256);
      return NULL;
    }
  } else {
    snprintf(j->sha256, sizeof j->sha256, "%s", m->sha256);
  }
  j->rc = tok__ranks_parse(m->ranks, data, len, &j->model, &j->err);
  release_source(data, &embedded);
  return NULL;
}

static void run_jobs(job *jobs, size_t n)
{
  pthread_t *threads = calloc(n ? n : 1, sizeof *threads);
  bool *started = calloc(n ? n : 1, sizeof *started);
  for (size_t i = 1; threads && started && i < n; i++)
    started[i] = pthread_create(&threads[i], NULL, job_run, &jobs[i]) == 0;
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || !started || !started[i]) job_run(&jobs[i]); /* this thread does the first */
    else pthread_join(threads[i], NULL);
  }
  free(threads);
  free(started);
}

static bool name_taken(const tok_registry *reg, const char *name)
{
  return tok_registry_find(reg, name, strlen(name)) != NULL;
}

static tok_err add_encoding(tok_registry *reg, tok_encoding *enc, tok_error *err)
{
  bool clash = name_taken(reg, enc->name);
  for (size_t a = 0; enc->aliases[a]; a++) clash = clash || name_taken(reg, enc->aliases[a]);
  if (clash) {
    tok_err rc = tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, TOK_NO_POS,
                           "the name %s (or an alias) is already taken by another tokenizer", enc->name);
    tok__encoding_free(enc);
    return rc;
  }
  tok_encoding **grown = realloc(reg->encs, (reg->n_encs + 1) * sizeof *grown);
  if (!grown) {
    tok__encoding_free(enc);
    return tok__nomem(err);
  }
  reg->encs = grown;
  reg->encs[reg->n_encs++] = enc;
  return TOK_OK;
}

static tok_err add_model(tok_registry *reg, tok__model *m, tok_error *err)
{
  tok__model **grown = realloc(reg->models, (reg->n_models + 1) * sizeof *grown);
  if (!grown) {
    tok__model_free(m);
    return tok__nomem(err);
  }
  reg->models = grown;
  reg->models[reg->n_models++] = m;
  return TOK_OK;
}

/* mkdir that is content with a directory already there */
static bool make_dir(const char *path, mode_t mode)
{
  return mkdir(path, mode) == 0 || errno == EEXIST;
}

tok_err tok_cache_dir_check(const char *dir, tok_error *err)
{
  char parent[4096];
  int n = snprintf(parent, sizeof parent, "%s", dir);
  if (n <= 0 || (size_t)n >= sizeof parent) return tok__fail(err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS, "cache directory path too long");
  /* the parent too (~/.cache may not exist yet) */
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    (void)make_dir(parent, 0755);
  }
  if (!make_dir(dir, 0700))
    return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "cannot create the cache directory %s: %s", dir,
                     strerror(errno));
  struct stat st;
  if (stat(dir, &st) != 0)
    return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "cannot examine the cache directory %s: %s", dir,
                     strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return tok__fail(err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS, "the cache directory %s is not a directory", dir);
  if (st.st_uid != geteuid() && st.st_uid != 0)
    return tok__fail(err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS,
                     "the cache directory %s belongs to another user (uid %u); tokd runs as uid %u", dir,
                     (unsigned)st.st_uid, (unsigned)geteuid());
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
    return tok__fail(err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS,
                     "the cache directory %s can be written by other users (mode %04o, no sticky bit)", dir,
                     (unsigned)(st.st_mode & 07777));
  return TOK_OK;
}

const char *tok_registry_cache_refused(const tok_registry *reg)
{
  return reg->cache_refused;
}

tok_err tok_registry_load(const tok_load_opts *opts, tok_registry **out, tok_error *err)
{
  static const tok_load_opts defaults = {0};
  if (!opts) opts = &defaults;
  tok_registry *reg = calloc(1, sizeof *reg);
  char **files = NULL;
  size_t n_files = 0, n_manifests = 0, n_jobs = 0;
  tok__manifest *manifests = NULL;
  size_t *job_of = NULL; /* the job reading manifest i's rank file */
  job *jobs = NULL;
  tok_err rc = TOK_OK;
  if (!reg) return tok__nomem(err);
  if (opts->cache_dir && *opts->cache_dir) {
    tok_error why;
    bool usable = tok_cache_dir_check(opts->cache_dir, &why) == TOK_OK;
    if (usable ? !(reg->cache_dir = strdup(opts->cache_dir)) : !(reg->cache_refused = strdup(why.detail))) {
      free(reg);
      return tok__nomem(err);
    }
  }
  const char *names = opts->encodings;
  bool no_tiktoken = names && strcmp(names, "none") == 0;

  if (!no_tiktoken && (rc = list_manifests(opts->vocab_dir, &files, &n_files, err)) != TOK_OK) goto done;
  if (!(manifests = calloc(n_files ? n_files : 1, sizeof *manifests)) ||
      !(job_of = calloc(n_files ? n_files : 1, sizeof *job_of)) ||
      !(jobs = calloc(n_files + opts->n_tokenizers + 1, sizeof *jobs))) {
    rc = tok__nomem(err);
    goto done;
  }
  for (size_t i = 0; i < n_files; i++) {
    const char *data;
    size_t len;
    tok__embedded_file embedded = {0};
    if ((rc = read_source(opts->vocab_dir, files[i], &data, &len, &embedded, err)) != TOK_OK) goto done;
    tok__manifest m;
    rc = tok__manifest_parse(files[i], data, len, &m, err);
    if (!embedded.data) free((void *)data);
    if (rc != TOK_OK) goto done;
    if (!manifest_wanted(&m, names)) {
      tok__manifest_free(&m);
      continue;
    }
    manifests[n_manifests++] = m;
  }
  /* every requested name must be a manifest (tokenizer names are checked by their load) */
  for (const char *p = no_tiktoken ? NULL : names; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    bool found = false;
    for (size_t i = 0; i < n_manifests && !found; i++) {
      found = strlen(manifests[i].name) == len && memcmp(manifests[i].name, p, len) == 0;
      for (size_t a = 0; !found && manifests[i].aliases[a]; a++)
        found = strlen(manifests[i].aliases[a]) == len && memcmp(manifests[i].aliases[a], p, len) == 0;
    }
    if (len > 0 && !found) {
      rc = tok__fail(err, TOK_EUNKNOWN_ENCODING, TOK_NO_POS, TOK_NO_POS,
                     "unknown encoding \"%.*s\" (in %s)", (int)(len > 64 ? 64 : len), p,
                     opts->vocab_dir ? opts->vocab_dir : "the built-in vocabularies");
      goto done;
    }
    if (!comma) break;
    p = comma + 1;
  }

  /* one job per distinct rank file */
  for (size_t i = 0; i < n_manifests; i++) {
    tok__manifest *m = &manifests[i];
    size_t j = 0;
    while (j < n_jobs && strcmp(jobs[j].m->ranks, m->ranks) != 0) j++;
    job_of[i] = j;
    if (j == n_jobs) jobs[n_jobs++] = (job){.dir = opts->vocab_dir, .m = m};
    else if (m->sha256[0] && jobs[j].m->sha256[0] && strcmp(m->sha256, jobs[j].m->sha256) != 0) {
      rc = tok__fail(err, TOK_ECHECKSUM, TOK_NO_POS, TOK_NO_POS,
                     "%s: the manifests of %s and %s disagree about its sha256", m->ranks,
                     jobs[j].m->name, m->name);
      goto done;
    }
  }
  size_t n_rank_jobs = n_jobs;
  for (size_t i = 0; i < opts->n_tokenizers; i++)
    jobs[n_jobs++] = (job){.hf = &opts->tokenizers[i], .cache_dir = reg->cache_dir};
  if (n_jobs == 0) {
    rc = tok__fail(err, TOK_EUNKNOWN_ENCODING, TOK_NO_POS, TOK_NO_POS, "no tokenizer selected");
    goto done;
  }
  run_jobs(jobs, n_jobs);
  for (size_t j = 0; j < n_jobs; j++)
    if (jobs[j].rc != TOK_OK) {
      rc = jobs[j].rc;
      if (err) *err = jobs[j].err;
      goto done;
    }

  /* the encodings, in manifest order, then the tokenizers in the order given */
  for (size_t j = 0; j < n_rank_jobs; j++) {
    jobs[j].shared = jobs[j].model;
    jobs[j].model = NULL;
    if ((rc = add_model(reg, jobs[j].shared, err)) != TOK_OK) goto done;
  }
  for (size_t i = 0; i < n_manifests; i++) {
    size_t j = job_of[i];
    tok_encoding *enc;
    if ((rc = tok__tiktoken_encoding(&manifests[i], jobs[j].shared, jobs[j].sha256,
                                     opts->vocab_dir == NULL, &enc, err)) != TOK_OK)
      goto done;
    if ((rc = add_encoding(reg, enc, err)) != TOK_OK) goto done;
  }
  for (size_t j = n_rank_jobs; j < n_jobs; j++) {
    tok__model *m = jobs[j].model;
    tok_encoding *enc = jobs[j].hf_enc;
    jobs[j].model = NULL, jobs[j].hf_enc = NULL;
    if ((rc = add_model(reg, m, err)) != TOK_OK) {
      tok__encoding_free(enc);
      goto done;
    }
    if ((rc = add_encoding(reg, enc, err)) != TOK_OK) goto done;
  }

done:
  for (size_t j = 0; jobs && j < n_jobs; j++) {
    tok__model_free(jobs[j].model);
    tok__encoding_free(jobs[j].hf_enc);
  }
  free(jobs);
  for (size_t i = 0; manifests && i < n_manifests; i++) tok__manifest_free(&manifests[i]);
  free(manifests);
  free(job_of);
  for (size_t i = 0; i < n_files; i++) free(files[i]);
  free(files);
  if (rc != TOK_OK) {
    tok_registry_free(reg);
    return rc;
  }
  *out = reg;
  return TOK_OK;
}
