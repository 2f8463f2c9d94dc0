/*
 * tok.c — the libtok facade: loading the registry, per-thread scratch, encode, count and
 * decode.
 *
 * Encoding a text: validate UTF-8 once; split it at allowed special tokens; split each
 * slice with the encoding's regex; for each piece, one hash probe settles the common case
 * (the piece is a token), otherwise the merge loop (bpe.c) runs. Ids go into the scratch's
 * output array, which grows to the longest result seen and is reused.
 */
#include <dirent.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------------------------
 * Errors
 */
static const char *const ERR_NAMES[] = {
#define X(e, name, msg, status) name,
    TOK_ERROR_TABLE(X)
#undef X
};
static const char *const ERR_MESSAGES[] = {
#define X(e, name, msg, status) msg,
    TOK_ERROR_TABLE(X)
#undef X
};

const char *tok_err_name(tok_err code)
{
  return (unsigned)code < TOK_ERR__COUNT ? ERR_NAMES[code] : "unknown";
}

const char *tok_err_message(tok_err code)
{
  return (unsigned)code < TOK_ERR__COUNT ? ERR_MESSAGES[code] : "unknown";
}

tok_err tok__fail(tok_error *err, tok_err code, size_t pos, size_t index, const char *fmt, ...)
{
  if (!err) return code;
  err->code = code;
  err->pos = pos;
  err->index = index;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->detail, sizeof err->detail, fmt, ap);
  va_end(ap);
  return code;
}

/* ---------------------------------------------------------------------------------------
 * Registry
 */
#define MAX_FILE_BYTES ((size_t)1 << 30)

/* Reads DIR/NAME, or the embedded copy when dir is NULL. *data is owned by the caller
 * (malloc'd) unless *embedded is set. */
static tok_err read_source(const char *dir, const char *name, const char **data, size_t *len,
                           tok__embedded_file *embedded, tok_error *err)
{
  if (!dir) {
    if (!tok__embedded_find(name, embedded))
      return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS,
                       "%s: not built into this binary", name);
    *data = embedded->data;
    *len = embedded->len;
    return TOK_OK;
  }
  embedded->data = NULL;
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s/%s: path too long", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: %s", path, strerror(errno));
  tok_buf buf = {.limit = MAX_FILE_BYTES};
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
                     rc == TOK_ELIMIT ? "larger than 1 GiB" : "read failed");
  }
  *data = buf.data;
  *len = buf.len;
  return TOK_OK;
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

static void encoding_free(tok_encoding *enc)
{
  if (!enc) return;
  if (enc->re) pcre2_code_free(enc->re);
  tok__manifest_free(&enc->manifest);
  free(enc);
}

void tok_registry_free(tok_registry *reg)
{
  if (!reg) return;
  for (size_t i = 0; i < reg->n_encs; i++) encoding_free(reg->encs[i]);
  for (size_t i = 0; i < reg->n_vocabs; i++) tok__vocab_free(reg->vocabs[i]);
  free(reg->encs);
  free(reg->vocabs);
  free(reg);
}

/* Loading one rank file: run on its own thread, so that start-up with several encodings
 * takes as long as the largest file rather than the sum. */
typedef struct vocab_job {
  const char *dir;
  const tok__manifest *m; /* the first manifest naming this file */
  tok__vocab *v;
  tok_err rc;
  tok_error err;
} vocab_job;

static void *vocab_job_run(void *arg)
{
  vocab_job *job = arg;
  const tok__manifest *m = job->m;
  const char *data;
  size_t len;
  tok__embedded_file embedded = {0};
  job->rc = read_source(job->dir, m->ranks, &data, &len, &embedded, &job->err);
  if (job->rc != TOK_OK) return NULL;
  char sum[65];
  if (job->dir) {
    /* Files from disk are checked; the embedded copies were checked when the binary was
     * built (make vocab-check) and by the test suite. */
    tok__sha256_hex(data, len, sum);
    if (m->sha256[0] && strcmp(sum, m->sha256) != 0) {
      release_source(data, &embedded);
      job->rc = tok__fail(&job->err, TOK_ECHECKSUM, TOK_NO_POS, TOK_NO_POS,
                          "%s/%s: sha256 is %s, manifest of %s expects %s", job->dir, m->ranks,
                          sum, m->name, m->sha256);
      return NULL;
    }
  } else {
    snprintf(sum, sizeof sum, "%s", m->sha256);
  }
  job->rc = tok__vocab_parse(m->ranks, data, len, &job->v, &job->err);
  release_source(data, &embedded);
  if (job->rc == TOK_OK) memcpy(job->v->sha256, sum, sizeof sum);
  return NULL;
}

/* Loads the rank files of all encodings in reg, each file once, in parallel. */
static tok_err registry_load_vocabs(tok_registry *reg, const char *dir, tok_error *err)
{
  vocab_job *jobs = calloc(reg->n_encs, sizeof *jobs);
  pthread_t *threads = calloc(reg->n_encs, sizeof *threads);
  bool *started = calloc(reg->n_encs, sizeof *started);
  size_t n_jobs = 0;
  tok_err rc = TOK_OK;
  if (!jobs || !threads || !started) {
    rc = tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory");
    goto done;
  }
  for (size_t e = 0; e < reg->n_encs; e++) {
    const tok__manifest *m = &reg->encs[e]->manifest;
    size_t j = 0;
    while (j < n_jobs && strcmp(jobs[j].m->ranks, m->ranks) != 0) j++;
    if (j == n_jobs) jobs[n_jobs++] = (vocab_job){.dir = dir, .m = m};
    else if (m->sha256[0] && jobs[j].m->sha256[0] && strcmp(m->sha256, jobs[j].m->sha256) != 0) {
      rc = tok__fail(err, TOK_ECHECKSUM, TOK_NO_POS, TOK_NO_POS,
                     "%s: the manifests of %s and %s disagree about its sha256", m->ranks,
                     jobs[j].m->name, m->name);
      goto done;
    }
  }
  for (size_t j = 1; j < n_jobs; j++)
    started[j] = pthread_create(&threads[j], NULL, vocab_job_run, &jobs[j]) == 0;
  for (size_t j = 0; j < n_jobs; j++) {
    if (j == 0 || !started[j]) vocab_job_run(&jobs[j]); /* this thread does the first */
    else pthread_join(threads[j], NULL);
  }
  for (size_t j = 0; j < n_jobs && rc == TOK_OK; j++)
    if (jobs[j].rc != TOK_OK) {
      rc = jobs[j].rc;
      if (err) *err = jobs[j].err;
    }
  if (rc == TOK_OK) {
    if (!(reg->vocabs = calloc(n_jobs, sizeof *reg->vocabs))) {
      rc = tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory");
      goto done;
    }
    for (size_t j = 0; j < n_jobs; j++) {
      reg->vocabs[j] = jobs[j].v;
      jobs[j].v = NULL;
    }
    reg->n_vocabs = n_jobs;
    for (size_t e = 0; e < reg->n_encs; e++)
      for (size_t j = 0; j < n_jobs; j++)
        if (strcmp(reg->vocabs[j]->file, reg->encs[e]->manifest.ranks) == 0)
          reg->encs[e]->vocab = reg->vocabs[j];
  }
done:
  for (size_t j = 0; jobs && j < n_jobs; j++) tok__vocab_free(jobs[j].v);
  free(jobs);
  free(threads);
  free(started);
  return rc;
}

/* Checks the special tokens against the ranks and fills the encoding's derived fields. */
static tok_err encoding_finish(tok_encoding *enc, bool embedded, tok_error *err)
{
  const tok__manifest *m = &enc->manifest;
  const tok__vocab *v = enc->vocab;
  uint32_t max_id = v->rank_end - 1;
  enc->special_first_byte = -1;
  for (size_t i = 0; i < m->n_special; i++) {
    const tok_special_token *sp = &m->special[i];
    if (sp->text_len == 0)
      return tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, TOK_NO_POS,
                       "encoding %s: empty special token", m->name);
    if (sp->id < v->rank_end && v->off[sp->id + 1] > v->off[sp->id])
      return tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, TOK_NO_POS,
                       "encoding %s: special token %s has id %u, which is also a rank",
                       m->name, sp->text, sp->id);
    if (sp->id > max_id) max_id = sp->id;
    enc->special_first[(uint8_t)sp->text[0]] = 1;
  }
  int first_count = 0;
  for (int b = 0; b < 256; b++)
    if (enc->special_first[b]) enc->special_first_byte = b, first_count++;
  if (first_count != 1) enc->special_first_byte = -1;
  if (m->n_vocab && (m->n_vocab != max_id + 1 || m->n_vocab != v->n_ranks + m->n_special))
    return tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, TOK_NO_POS,
                     "encoding %s: n_vocab %u does not match %u ranks + %zu special tokens "
                     "(highest id %u)",
                     m->name, m->n_vocab, v->n_ranks, m->n_special, max_id);
  tok_err rc = tok__pretok_compile(enc, err);
  if (rc != TOK_OK) return rc;
  enc->info = (tok_encoding_info){
      .name = m->name,
      .aliases = (const char *const *)m->aliases,
      .pattern = m->pattern,
      .ranks_file = v->file,
      .sha256 = v->sha256,
      .n_ranks = v->n_ranks,
      .n_vocab = max_id + 1,
      .n_special = m->n_special,
      .special = m->special,
      .embedded = embedded,
  };
  return TOK_OK;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The manifest file names to read, sorted; free with free_names. */
static tok_err list_manifests(const char *dir, char ***out, size_t *n_out, tok_error *err)
{
  char **names = NULL;
  size_t n = 0;
  if (!dir) {
    for (const char *const *e = tok_embedded_names(); *e; e++) n++;
    names = calloc(n + 1, sizeof *names);
    if (!names) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory");
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
    if (n == 0)
      return tok__fail(err, TOK_EIO, TOK_NO_POS, TOK_NO_POS, "%s: no *.manifest files", dir);
    qsort(names, n, sizeof *names, cmp_str);
  }
  *out = names;
  *n_out = n;
  return TOK_OK;
nomem:
  for (size_t i = 0; names && i < n; i++) free(names[i]);
  free(names);
  return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory");
}

const tok_encoding *tok_registry_find(const tok_registry *reg, const char *name, size_t name_len)
{
  for (size_t i = 0; i < reg->n_encs; i++) {
    const tok__manifest *m = &reg->encs[i]->manifest;
    if (strlen(m->name) == name_len && memcmp(m->name, name, name_len) == 0) return reg->encs[i];
    for (size_t a = 0; m->aliases[a]; a++)
      if (strlen(m->aliases[a]) == name_len && memcmp(m->aliases[a], name, name_len) == 0)
        return reg->encs[i];
  }
  return NULL;
}

tok_err tok_registry_load(const char *vocab_dir, const char *names, tok_registry **out,
                          tok_error *err)
{
  tok_registry *reg = calloc(1, sizeof *reg);
  char **files = NULL;
  size_t n_files = 0;
  tok_err rc;
  if (!reg) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory");
  if ((rc = list_manifests(vocab_dir, &files, &n_files, err)) != TOK_OK) goto done;

  for (size_t i = 0; i < n_files; i++) {
    const char *data;
    size_t len;
    tok__embedded_file embedded = {0};
    tok__manifest m;
    if ((rc = read_source(vocab_dir, files[i], &data, &len, &embedded, err)) != TOK_OK) goto done;
    rc = tok__manifest_parse(files[i], data, len, &m, err);
    if (!embedded.data) free((void *)data);
    if (rc != TOK_OK) goto done;
    if (!manifest_wanted(&m, names)) {
      tok__manifest_free(&m);
      continue;
    }
    bool clash = tok_registry_find(reg, m.name, strlen(m.name)) != NULL;
    for (size_t a = 0; m.aliases[a]; a++)
      clash = clash || tok_registry_find(reg, m.aliases[a], strlen(m.aliases[a])) != NULL;
    if (clash) {
      rc = tok__fail(err, TOK_EMANIFEST, TOK_NO_POS, TOK_NO_POS,
                     "%s: encoding name or alias %s is already taken", files[i], m.name);
      tok__manifest_free(&m);
      goto done;
    }
    tok_encoding *enc = calloc(1, sizeof *enc);
    tok_encoding **grown = enc ? realloc(reg->encs, (reg->n_encs + 1) * sizeof *grown) : NULL;
    if (!grown) {
      free(enc);
      tok__manifest_free(&m);
      rc = tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory");
      goto done;
    }
    reg->encs = grown;
    enc->manifest = m;
    reg->encs[reg->n_encs++] = enc;
  }

  /* every requested name must have been found */
  for (const char *p = names; p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (len > 0 && !tok_registry_find(reg, p, len)) {
      rc = tok__fail(err, TOK_EUNKNOWN_ENCODING, TOK_NO_POS, TOK_NO_POS,
                     "unknown encoding \"%.*s\" (in %s)", (int)(len > 64 ? 64 : len), p,
                     vocab_dir ? vocab_dir : "the built-in vocabularies");
      goto done;
    }
    if (!comma) break;
    p = comma + 1;
  }
  if (reg->n_encs == 0) {
    rc = tok__fail(err, TOK_EUNKNOWN_ENCODING, TOK_NO_POS, TOK_NO_POS, "no encoding selected");
    goto done;
  }
  if ((rc = registry_load_vocabs(reg, vocab_dir, err)) != TOK_OK) goto done;
  for (size_t e = 0; e < reg->n_encs; e++)
    if ((rc = encoding_finish(reg->encs[e], vocab_dir == NULL, err)) != TOK_OK) goto done;

done:
  for (size_t i = 0; i < n_files; i++) free(files[i]);
  free(files);
#ifdef __GLIBC__
  /* Parsing leaves megabytes of freed temporaries in the heap; a sidecar is judged by its
   * resident memory, so hand them back now (measured: 12.6 -> 8.2 MB for cl100k+o200k). */
  malloc_trim(0);
#endif
  if (rc != TOK_OK) {
    tok_registry_free(reg);
    return rc;
  }
  *out = reg;
  return TOK_OK;
}

size_t tok_registry_count(const tok_registry *reg) { return reg->n_encs; }

const tok_encoding *tok_registry_at(const tok_registry *reg, size_t i)
{
  return i < reg->n_encs ? reg->encs[i] : NULL;
}

const tok_encoding_info *tok_encoding_get_info(const tok_encoding *enc) { return &enc->info; }

/* ---------------------------------------------------------------------------------------
 * Special-token sets
 */
tok_err tok_special_set_add(const tok_encoding *enc, tok_special_set *set, const char *text,
                            size_t text_len, tok_error *err)
{
  for (size_t k = 0; k < enc->info.n_special; k++)
    if (enc->info.special[k].text_len == text_len &&
        memcmp(enc->info.special[k].text, text, text_len) == 0) {
      set->mask[k] = 1;
      return TOK_OK;
    }
  return tok__fail(err, TOK_EUNKNOWN_SPECIAL, TOK_NO_POS, TOK_NO_POS,
                   "\"%.*s\" is not a special token of %s", (int)(text_len > 64 ? 64 : text_len),
                   text, enc->info.name);
}

void tok_special_set_all(const tok_encoding *enc, tok_special_set *set)
{
  memset(set, 0, sizeof *set);
  set->n = enc->info.n_special;
  memset(set->mask, 1, set->n);
}

tok_err tok_special_set_parse(const tok_encoding *enc, const char *spec, size_t spec_len,
                              tok_special_set *set, tok_error *err)
{
  tok_special_set s = {.n = enc->info.n_special};
  if (spec_len == 3 && memcmp(spec, "all", 3) == 0) {
    tok_special_set_all(enc, set);
    return TOK_OK;
  }
  if (!(spec_len == 4 && memcmp(spec, "none", 4) == 0)) {
    for (size_t p = 0; p < spec_len;) {
      const char *comma = memchr(spec + p, ',', spec_len - p);
      size_t len = comma ? (size_t)(comma - (spec + p)) : spec_len - p;
      tok_err rc = tok_special_set_add(enc, &s, spec + p, len, err);
      if (rc != TOK_OK) return rc;
      p += len + 1;
    }
  }
  *set = s;
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Scratch
 */
tok_scratch *tok_scratch_new(const tok_limits *limits)
{
  tok_scratch *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  if (limits) s->limits = *limits;
  if (!s->limits.jit_stack_max) s->limits.jit_stack_max = (size_t)1 << 20;
  s->md = pcre2_match_data_create(1, NULL);
  s->mctx = pcre2_match_context_create(NULL);
  s->jit_stack = pcre2_jit_stack_create(32 * 1024, s->limits.jit_stack_max, NULL);
  if (!s->md || !s->mctx || !s->jit_stack) {
    tok_scratch_free(s);
    return NULL;
  }
  pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
  if (s->limits.match_limit) pcre2_set_match_limit(s->mctx, s->limits.match_limit);
  return s;
}

void tok_scratch_free(tok_scratch *s)
{
  if (!s) return;
  pcre2_match_data_free(s->md);
  pcre2_match_context_free(s->mctx);
  pcre2_jit_stack_free(s->jit_stack);
  free(s->ids);
  free(s->offsets);
  free(s->part_self);
  free(s->part_pair);
  free(s->part_next);
  free(s->part_prev);
  free(s->heap);
  free(s);
}

void tok_scratch_trim(tok_scratch *s, size_t keep_bytes)
{
  if (s->ids_cap * 2 * sizeof(uint32_t) > keep_bytes) {
    free(s->ids);
    free(s->offsets);
    s->ids = s->offsets = NULL;
    s->ids_cap = 0;
  }
  /* part_* are 4 arrays of 4 bytes and the heap 3 of 8 bytes per piece byte */
  if (s->piece_cap * 40 > keep_bytes) {
    free(s->part_self), free(s->part_pair), free(s->part_next), free(s->part_prev), free(s->heap);
    s->part_self = s->part_pair = s->part_next = s->part_prev = NULL;
    s->heap = NULL;
    s->piece_cap = 0;
  }
}

tok_work_stats tok_scratch_stats(const tok_scratch *s) { return s->stats; }
void tok_scratch_stats_reset(tok_scratch *s) { memset(&s->stats, 0, sizeof s->stats); }

/* Makes room for `extra` more ids (and offsets when want_offsets). */
static tok_err ids_reserve(tok_scratch *s, size_t len, size_t extra, bool want_offsets,
                           tok_error *err)
{
  size_t need = len + extra;
  if (need <= s->ids_cap && (!want_offsets || s->offsets)) return TOK_OK;
  size_t cap = s->ids_cap ? s->ids_cap : 1024;
  while (cap < need) cap *= 2;
  if (cap > SIZE_MAX / 8) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "too many tokens");
  if (cap != s->ids_cap) {
    uint32_t *grown = realloc(s->ids, cap * sizeof *grown);
    if (!grown) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory for ids");
    s->ids = grown;
    if (s->offsets) {
      uint32_t *o = realloc(s->offsets, cap * sizeof *o);
      if (!o) return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory for ids");
      s->offsets = o;
    }
    s->ids_cap = cap;
  }
  if (want_offsets && !s->offsets) {
    if (!(s->offsets = malloc(s->ids_cap * sizeof *s->offsets)))
      return tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "out of memory for offsets");
  }
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Encode
 */
typedef struct encode_state {
  const tok_encoding *enc;
  tok_scratch *s;
  const tok_encode_opts *opts;
  size_t len;       /* ids in the scratch */
  size_t total;     /* tokens produced, including those dropped by count-only mode */
  bool keep;        /* keep ids (encode) or only count them */
  bool stopped;
  tok_error *err;
} encode_state;

static tok_err check_limits(encode_state *st, size_t at)
{
  if (st->opts->stop_after && st->total > st->opts->stop_after) {
    st->stopped = true;
    return TOK_OK;
  }
  size_t max = st->s->limits.max_tokens_out;
  if (max && st->total > max)
    return tok__fail(st->err, TOK_ELIMIT, at, TOK_NO_POS,
                     "more than %zu tokens (limit reached at byte %zu)", max, at);
  return TOK_OK;
}

/* Encodes text[from..to) as ordinary text; offsets are absolute in text. */
static tok_err encode_ordinary(encode_state *st, const uint8_t *text, size_t from, size_t to)
{
  const tok_encoding *enc = st->enc;
  const tok__vocab *v = enc->vocab;
  tok_scratch *s = st->s;
  const uint8_t *subject = text + from;
  size_t subject_len = to - from, pos = 0;
  bool offsets = st->opts->want_offsets;
  tok_err rc;

  while (pos < subject_len && !st->stopped) {
    size_t a, b;
    if ((rc = tok__pretok_next(enc, s, subject, subject_len, pos, &a, &b, st->err)) != TOK_OK) {
      if (st->err) st->err->pos += from;
      return rc;
    }
    if (a >= subject_len) break;
    pos = b;
    const uint8_t *piece = subject + a;
    size_t n = b - a;
    if (!st->keep) st->len = 0;
    if ((rc = ids_reserve(s, st->len, n, offsets, st->err)) != TOK_OK) return rc;
    s->stats.pieces++;
    uint32_t rank = n == 1 ? v->byte_rank[piece[0]] : tok__rank_lookup(v, piece, n);
    size_t produced = 1;
    if (rank != TOK__NO_RANK) {
      s->stats.direct_hits++;
      s->ids[st->len] = rank;
      if (offsets) s->offsets[st->len] = (uint32_t)(from + a);
    } else {
      if (n == 1)
        return tok__fail(st->err, TOK_EBYTE_MISSING, from + a, TOK_NO_POS,
                         "byte 0x%02x at offset %zu has no token in %s", piece[0], from + a,
                         enc->info.name);
      s->stats.rank_lookups++;
      if (n > TOK__LONG_PIECE && (rc = tok__scratch_fit(s, n)) != TOK_OK)
        return tok__fail(st->err, rc, from + a, TOK_NO_POS, "piece of %zu bytes too long", n);
      rc = tok__bpe_encode_piece(v, s, piece, n, s->ids + st->len,
                                 offsets ? s->offsets + st->len : NULL, (uint32_t)(from + a),
                                 &produced, st->err);
      if (rc != TOK_OK) return rc;
    }
    st->len += produced;
    st->total += produced;
    if ((rc = check_limits(st, from + b)) != TOK_OK) return rc;
  }
  return TOK_OK;
}

static tok_err encode_impl(encode_state *st, const char *text_in, size_t text_len)
{
  static const tok_encode_opts ordinary = {0};
  const uint8_t *text = (const uint8_t *)text_in;
  const tok_encoding *enc = st->enc;
  if (!st->opts) st->opts = &ordinary;
  const tok_encode_opts *opts = st->opts;
  tok_err rc;

  if (text_len > UINT32_MAX)
    return tok__fail(st->err, TOK_ELIMIT, TOK_NO_POS, TOK_NO_POS, "text longer than 4 GiB");
  size_t bad;
  if (!tok_utf8_valid(text_in, text_len, &bad))
    return tok__fail(st->err, TOK_EUTF8, bad, TOK_NO_POS,
                     "invalid UTF-8 at byte offset %zu", bad);

  const tok_special_set *allowed = opts->allowed_special;
  if (allowed && allowed->n != enc->info.n_special)
    return tok__fail(st->err, TOK_EINVAL, TOK_NO_POS, TOK_NO_POS,
                     "special-token set belongs to another encoding");
  if (opts->check_disallowed) {
    size_t at = 0;
    for (long k; (k = tok__special_find(enc, NULL, text, text_len, at, &at)) >= 0;) {
      if (!allowed || !allowed->mask[k])
        return tok__fail(st->err, TOK_EDISALLOWED_SPECIAL, at, TOK_NO_POS,
                         "special token %s at byte offset %zu is not allowed",
                         enc->info.special[k].text, at);
      at += enc->info.special[k].text_len;
    }
  }

  size_t pos = 0;
  while (!st->stopped) {
    size_t at = text_len;
    long k = -1;
    if (allowed) k = tok__special_find(enc, allowed, text, text_len, pos, &at);
    if (k < 0) at = text_len;
    if ((rc = encode_ordinary(st, text, pos, at)) != TOK_OK) return rc;
    if (k < 0 || st->stopped) break;
    if (!st->keep) st->len = 0;
    if ((rc = ids_reserve(st->s, st->len, 1, opts->want_offsets, st->err)) != TOK_OK) return rc;
    st->s->ids[st->len] = enc->info.special[k].id;
    if (opts->want_offsets) st->s->offsets[st->len] = (uint32_t)at;
    st->len++;
    st->total++;
    pos = at + enc->info.special[k].text_len;
    if ((rc = check_limits(st, pos)) != TOK_OK) return rc;
  }
  return TOK_OK;
}

tok_err tok_encode(const tok_encoding *enc, tok_scratch *scratch, const char *text,
                   size_t text_len, const tok_encode_opts *opts, tok_encode_result *out,
                   tok_error *err)
{
  encode_state st = {.enc = enc, .s = scratch, .opts = opts, .keep = true, .err = err};
  tok_err rc = encode_impl(&st, text, text_len);
  if (rc != TOK_OK) return rc;
  size_t len = st.len;
  if (st.stopped && len > st.opts->stop_after + 1) len = st.opts->stop_after + 1;
  *out = (tok_encode_result){scratch->ids, st.opts->want_offsets ? scratch->offsets : NULL, len,
                             st.stopped};
  return TOK_OK;
}

tok_err tok_count(const tok_encoding *enc, tok_scratch *scratch, const char *text,
                  size_t text_len, const tok_encode_opts *opts, size_t *count, bool *stopped,
                  tok_error *err)
{
  tok_encode_opts o = opts ? *opts : (tok_encode_opts){0};
  o.want_offsets = false;
  encode_state st = {.enc = enc, .s = scratch, .opts = &o, .keep = false, .err = err};
  tok_err rc = encode_impl(&st, text, text_len);
  if (rc != TOK_OK) return rc;
  size_t total = st.total;
  if (st.stopped && total > o.stop_after + 1) total = o.stop_after + 1;
  *count = total;
  if (stopped) *stopped = st.stopped;
  return TOK_OK;
}

/* ---------------------------------------------------------------------------------------
 * Decode
 */
const char *tok_token_bytes(const tok_encoding *enc, uint32_t id, size_t *len)
{
  const tok__vocab *v = enc->vocab;
  if (id < v->rank_end && v->off[id + 1] > v->off[id]) {
    *len = v->off[id + 1] - v->off[id];
    return (const char *)v->bytes + v->off[id];
  }
  for (size_t k = 0; k < enc->info.n_special; k++)
    if (enc->info.special[k].id == id) {
      *len = enc->info.special[k].text_len;
      return enc->info.special[k].text;
    }
  return NULL;
}

tok_err tok_decode_bytes(const tok_encoding *enc, const uint32_t *ids, size_t n_ids,
                         tok_buf *out, tok_error *err)
{
  size_t start_len = out->len;
  for (size_t i = 0; i < n_ids; i++) {
    size_t len;
    const char *bytes = tok_token_bytes(enc, ids[i], &len);
    if (!bytes) {
      out->len = start_len;
      return tok__fail(err, TOK_EUNKNOWN_TOKEN, TOK_NO_POS, i,
                       "token id %u at index %zu is not a token of %s (its ids are below %u)",
                       ids[i], i, enc->info.name, enc->info.n_vocab);
    }
    tok_err rc = tok_buf_append(out, bytes, len);
    if (rc != TOK_OK) {
      out->len = start_len;
      return tok__fail(err, rc, TOK_NO_POS, i, "decoded text exceeds %zu bytes at index %zu",
                       out->limit, i);
    }
  }
  return TOK_OK;
}

bool tok_rank_of(const tok_encoding *enc, const char *bytes, size_t len, uint32_t *rank)
{
  if (len == 0) return false;
  uint32_t r = tok__rank_lookup(enc->vocab, (const uint8_t *)bytes, len);
  if (r == TOK__NO_RANK) return false;
  *rank = r;
  return true;
}
