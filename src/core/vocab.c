/*
 * vocab.c — builds the frozen tables of a BPE model (internal.h, tok__model) from the
 * tokens and merges a loader hands over.
 *
 *   - bytes/off: every token's bytes laid end to end in id order, so decoding id i is
 *     bytes[off[i] .. off[i+1]) (an absent id has an empty range);
 *   - index: a minimal perfect hash from token bytes to (id, offset, length) (phash.h);
 *   - byte_id/pair_prio: one- and two-byte tokens, so short pieces skip the hash;
 *   - merges (by list): sorted by the token they produce, so that checking a pair is one
 *     hash lookup of the joined bytes plus a look at the split points of that token;
 *   - whole_ok: which tokens a piece may be mapped to directly without merging.
 * Everything is checked: a merge naming a token that is not in the vocabulary, two ids for
 * the same bytes, or one id twice is refused, because a silently wrong table gives wrong
 * ids much later.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/image.h"
#include "core/internal.h"
#include "common/cpu.h"

typedef struct tok_rec {
  uint32_t id, off, len;
  bool literal;
} tok_rec;

typedef struct merge_rec {
  uint32_t off, left_len, right_len; /* in merge_bytes */
} merge_rec;

struct tok__model_builder {
  tok_buf bytes;       /* token bytes, in the order added */
  tok_rec *toks;
  size_t n_toks, toks_cap;
  tok_buf merge_bytes; /* left then right bytes of each merge */
  merge_rec *merges;
  size_t n_merges, merges_cap;
};

tok__model_builder *tok__model_builder_new(void)
{
  tok__model_builder *b = calloc(1, sizeof *b);
  if (b) b->bytes.limit = b->merge_bytes.limit = (size_t)1 << 31;
  return b;
}

void tok__model_builder_free(tok__model_builder *b)
{
  if (!b) return;
  tok_buf_free(&b->bytes);
  tok_buf_free(&b->merge_bytes);
  free(b->toks);
  free(b->merges);
  free(b);
}

tok_err tok__model_add_token(tok__model_builder *b, const uint8_t *bytes, size_t len, uint32_t id,
                             bool literal)
{
  if (b->n_toks == b->toks_cap) {
    size_t cap = b->toks_cap ? b->toks_cap * 2 : 4096;
    tok_rec *grown = realloc(b->toks, cap * sizeof *grown);
    if (!grown) return TOK_ENOMEM;
    b->toks = grown;
    b->toks_cap = cap;
  }
  if (len == 0 || len > 0xFFFF || id == TOK__NONE) return TOK_EINVAL;
  uint32_t off = (uint32_t)b->bytes.len;
  tok_err rc = tok_buf_append(&b->bytes, bytes, len);
  if (rc != TOK_OK) return rc;
  b->toks[b->n_toks++] = (tok_rec){id, off, (uint32_t)len, literal};
  return TOK_OK;
}

tok_err tok__model_add_merge(tok__model_builder *b, const uint8_t *left, size_t left_len,
                             const uint8_t *right, size_t right_len)
{
  if (b->n_merges == b->merges_cap) {
    size_t cap = b->merges_cap ? b->merges_cap * 2 : 4096;
    merge_rec *grown = realloc(b->merges, cap * sizeof *grown);
    if (!grown) return TOK_ENOMEM;
    b->merges = grown;
    b->merges_cap = cap;
  }
  if (left_len + right_len > 0xFFFF) return TOK_EINVAL;
  uint32_t off = (uint32_t)b->merge_bytes.len;
  tok_err rc = tok_buf_append(&b->merge_bytes, left, left_len);
  if (rc == TOK_OK) rc = tok_buf_append(&b->merge_bytes, right, right_len);
  if (rc != TOK_OK) return rc;
  b->merges[b->n_merges++] = (merge_rec){off, (uint32_t)left_len, (uint32_t)right_len};
  return TOK_OK;
}

void tok__model_free(tok__model *m)
{
  if (!m) return;
  if (m->in_image) {
    tok__bt_free(m->bt);
    pthread_mutex_destroy(&m->bt_lock);
    free(m);
    return;
  }
  free(m->off);
  free(m->bytes);
  free(m->pair_prio);
  free(m->merge_id);
  free(m->merge_start);
  free(m->merge_left);
  free(m->merge_prio);
  free(m->whole_ok);
  free(m->max_len2);
  free(m->literal);
  tok__bt_free(m->bt);
  pthread_mutex_destroy(&m->bt_lock);
  tok__phash_free(&m->index);
  free(m);
}

uint32_t tok__model_find(const tok__model *m, const uint8_t *bytes, size_t len)
{
  if (len == 0) return TOK__NONE;
  uint32_t id = len <= m->max_len ? tok__token_lookup(m, bytes, len) : TOK__NONE;
  if (id != TOK__NONE || !m->literal) return id;
  for (uint32_t i = 0; i < m->id_end; i++)
    if (tok__bit(m->literal, i) && m->off[i + 1] - m->off[i] == len &&
        memcmp(m->bytes + m->off[i], bytes, len) == 0)
      return i;
  return TOK__NONE;
}

static void show(char *out, size_t size, const uint8_t *bytes, size_t len)
{
  /* token bytes for an error message: printable ASCII as is, the rest as \xNN */
  size_t o = 0;
  for (size_t i = 0; i < len && o + 5 < size; i++)
    o += (size_t)(bytes[i] >= 0x20 && bytes[i] < 0x7F && bytes[i] != '"'
                      ? snprintf(out + o, size - o, "%c", bytes[i])
                      : snprintf(out + o, size - o, "\\x%02x", bytes[i]));
  out[o] = '\0';
}

/* Resolving merges to ids is three hash lookups each (half a million merges for Gemma 3),
 * so it is shared out among threads like the whole-token check. */
typedef struct resolve_job {
  const tok__model_builder *b;
  const tok__model *m;
  uint32_t from, to;
  uint32_t bad;  /* first merge that names a missing token, or TOK__NONE */
  int bad_part;  /* 0 left, 1 right, 2 merged */
} resolve_job;

static void *resolve_run(void *arg)
{
  resolve_job *j = arg;
  const tok__model *m = j->m;
  j->bad = TOK__NONE;
  for (uint32_t p = j->from; p < j->to; p++) {
    const merge_rec *r = &j->b->merges[p];
    const uint8_t *left = (const uint8_t *)j->b->merge_bytes.data + r->off;
    uint32_t ids[3] = {tok__model_find(m, left, r->left_len),
                       tok__model_find(m, left + r->left_len, r->right_len),
                       r->left_len + r->right_len <= m->max_len
                           ? tok__token_lookup(m, left, r->left_len + r->right_len)
                           : TOK__NONE};
    for (int k = 0; k < 3; k++)
      if (ids[k] == TOK__NONE || (m->literal && tok__bit(m->literal, ids[k]))) {
        j->bad = p, j->bad_part = k;
        return NULL;
      }
    m->merge_id[p] = ids[2];
  }
  return NULL;
}

static size_t n_threads(void)
{
  long cores = tok__cpu_count();
  return cores < 1 ? 1 : cores > 8 ? 8 : (size_t)cores;
}

/* by list: resolves each merge to ids and files it under the token it produces */
static tok_err build_merges(tok__model_builder *b, tok__model *m, const char *what,
                            tok_error *err)
{
  uint32_t n = (uint32_t)b->n_merges;
  m->merge_id = malloc((size_t)(n ? n : 1) * sizeof *m->merge_id);
  m->merge_start = calloc((size_t)m->id_end + 1, sizeof *m->merge_start);
  m->merge_left = malloc((size_t)(n ? n : 1) * sizeof *m->merge_left);
  m->merge_prio = malloc((size_t)(n ? n : 1) * sizeof *m->merge_prio);
  if (!m->merge_id || !m->merge_start || !m->merge_left || !m->merge_prio) return tok__nomem(err);
  m->n_merges = n;
  size_t n_jobs = n_threads();
  resolve_job jobs[8];
  pthread_t threads[8];
  bool started[8] = {false};
  uint32_t per = (uint32_t)((n + n_jobs - 1) / n_jobs);
  for (size_t k = 0; k < n_jobs; k++) {
    uint64_t from = (uint64_t)per * k, to = from + per;
    jobs[k] = (resolve_job){b, m, (uint32_t)(from < n ? from : n), (uint32_t)(to < n ? to : n), TOK__NONE, 0};
    if (k > 0) started[k] = pthread_create(&threads[k], NULL, resolve_run, &jobs[k]) == 0;
  }
  for (size_t k = 0; k < n_jobs; k++) {
    if (k == 0 || !started[k]) resolve_run(&jobs[k]);
    else pthread_join(threads[k], NULL);
  }
  for (size_t k = 0; k < n_jobs; k++)
    if (jobs[k].bad != TOK__NONE) {
      uint32_t p = jobs[k].bad;
      const merge_rec *r = &b->merges[p];
      const uint8_t *left = (const uint8_t *)b->merge_bytes.data + r->off;
      char a[80], c[80];
      show(a, sizeof a, left, r->left_len);
      show(c, sizeof c, left + r->left_len, r->right_len);
      return tok__fail(err, TOK_ETOKENIZER, TOK_NO_POS, p,
                       "%s: model.merges[%u] (\"%s\" + \"%s\"): %s is not in the vocabulary", what, p,
                       a, c, jobs[k].bad_part == 0 ? "the left part" : jobs[k].bad_part == 1 ? "the right part" : "the merged token");
    }
  for (uint32_t p = 0; p < n; p++) m->merge_start[m->merge_id[p] + 1]++;
  for (uint32_t i = 0; i < m->id_end; i++) m->merge_start[i + 1] += m->merge_start[i];
  uint32_t *fill = malloc((size_t)m->id_end * sizeof *fill);
  if (!fill) return tok__nomem(err);
  memcpy(fill, m->merge_start, (size_t)m->id_end * sizeof *fill);
  for (uint32_t p = 0; p < n; p++) {
    uint32_t t = m->merge_id[p], left_len = b->merges[p].left_len;
    /* the same pair listed twice: Hugging Face builds a hash map from the list, so the
     * later entry's priority wins */
    uint32_t k;
    for (k = m->merge_start[t]; k < fill[t] && m->merge_left[k] != left_len; k++) {
    }
    if (k < fill[t]) {
      m->merge_prio[k] = p;
      continue;
    }
    m->merge_left[fill[t]] = (uint16_t)left_len;
    m->merge_prio[fill[t]++] = p;
  }
  /* entries a duplicate left unused stay past fill[t]: mark them unreachable */
  for (uint32_t t = 0; t < m->id_end; t++)
    for (uint32_t k = fill[t]; k < m->merge_start[t + 1]; k++) m->merge_left[k] = 0;
  free(fill);
  if (m->byte_level)
    for (uint32_t t = 0; t < m->id_end; t++)
      if (m->off[t + 1] - m->off[t] == 2)
        for (uint32_t k = m->merge_start[t]; k < m->merge_start[t + 1]; k++)
          if (m->merge_left[k] == 1)
            m->pair_prio[(uint32_t)m->bytes[m->off[t]] << 8 | m->bytes[m->off[t] + 1]] =
                m->merge_prio[k];
  return TOK_OK;
}

/* whole_ok: a token is its own encoding when merging its bytes yields it alone. One merge
 * per token is most of a large model's load time, so the ids are shared out among a few
 * threads (each with its own scratch, writing whole 64-bit words of the bitset). */
typedef struct whole_job {
  const tok__model *probe;
  uint64_t *bits;
  uint32_t from, to; /* multiples of 64, except the end */
  bool failed;
} whole_job;

static void *whole_run(void *arg)
{
  whole_job *j = arg;
  const tok__model *m = j->probe;
  tok_scratch *s = tok_scratch_new(NULL);
  uint32_t *ids = malloc((size_t)(m->max_len + 1) * sizeof *ids);
  if (!s || !ids || tok__scratch_fit(s, m->max_len) != TOK_OK) {
    j->failed = true;
  } else {
    for (uint32_t id = j->from; id < j->to; id++) {
      uint32_t len = m->off[id + 1] - m->off[id];
      if (len == 0 || (m->literal && tok__bit(m->literal, id))) continue;
      size_t n = 0;
      if (tok__bpe_merge_only(m, s, m->bytes + m->off[id], len, ids, &n) == TOK_OK && n == 1 &&
          ids[0] == id)
        tok__bit_set(j->bits, id);
    }
  }
  free(ids);
  tok_scratch_free(s);
  return NULL;
}

static tok_err build_whole_ok(tok__model *m, tok_error *err)
{
  size_t words = ((size_t)m->id_end + 63) / 64;
  uint64_t *bits = calloc(words ? words : 1, sizeof *bits);
  if (!bits) return tok__nomem(err);
  /* the probe merges without the shortcut being computed, and without byte fallback or
   * the unknown token: a token needing them is not its own encoding */
  tok__model probe = *m;
  probe.whole_ok = NULL;
  probe.byte_fallback = false;
  probe.unk_id = TOK__NONE;
  probe.missing_is_error = false;
  size_t n_jobs = n_threads();
  whole_job jobs[8];
  pthread_t threads[8];
  bool started[8] = {false};
  uint32_t per = (uint32_t)((words + n_jobs - 1) / n_jobs) * 64;
  for (size_t k = 0; k < n_jobs; k++) {
    uint64_t from = (uint64_t)per * k, to = from + per;
    jobs[k] = (whole_job){&probe, bits, (uint32_t)(from < m->id_end ? from : m->id_end),
                          (uint32_t)(to < m->id_end ? to : m->id_end), false};
    if (k > 0) started[k] = pthread_create(&threads[k], NULL, whole_run, &jobs[k]) == 0;
  }
  for (size_t k = 0; k < n_jobs; k++) {
    if (k == 0 || !started[k]) whole_run(&jobs[k]);
    else pthread_join(threads[k], NULL);
  }
  for (size_t k = 0; k < n_jobs; k++)
    if (jobs[k].failed) {
      free(bits);
      return tok__nomem(err);
    }
  m->whole_ok = bits;
  return TOK_OK;
}

/* Char-level: can long pieces be split before word marks (tok__model.split_words)? */
static void find_word_splits(tok__model *m)
{
  static const uint8_t mark[3] = {0xE2, 0x96, 0x81}; /* U+2581 */
  if (m->byte_level || tok__token_lookup(m, mark, 3) == TOK__NONE) return;
  for (uint32_t id = 0; id < m->id_end; id++) {
    const uint8_t *t = m->bytes + m->off[id];
    size_t len = m->off[id + 1] - m->off[id];
    for (size_t i = 0; i + 3 <= len;) {
      size_t cl = t[i] < 0x80 ? 1 : t[i] < 0xE0 ? 2 : t[i] < 0xF0 ? 3 : 4;
      if (i > 0 && i + 3 <= len && memcmp(t + i, mark, 3) == 0) {
        size_t p = i - 1;
        while (p > 0 && (t[p] & 0xC0) == 0x80) p--;
        if (memcmp(t + p, mark, 3) != 0) {
          /* the character before this mark sticks to it */
          size_t q = p;
          uint32_t c = tok__utf8_next(t, len, &q);
          size_t k = 0;
          while (k < m->n_sticky && m->sticky[k] != c) k++;
          if (k == m->n_sticky) {
            if (m->n_sticky == 8) return; /* too many: no splitting */
            m->sticky[m->n_sticky++] = c;
          }
        }
      }
      i += cl;
    }
  }
  m->split_words = true;
}

static int cmp_id(const void *a, const void *b)
{
  uint32_t x = ((const tok_rec *)a)->id, y = ((const tok_rec *)b)->id;
  return (x > y) - (x < y);
}

/* A model's number in the process, which tags its entries in the scratches' piece caches:
 * 2^27 models a process before one comes back. */
static uint32_t next_serial(void)
{
  static atomic_uint serials;
  return (atomic_fetch_add(&serials, 1) % ((1u << 27) - 1)) + 1;
}

tok_err tok__model_finish(tok__model_builder *b, const tok__model_opts *opts, tok__model **out,
                          tok_error *err)
{
  const char *what = opts->what ? opts->what : "vocabulary";
  tok__model *m = calloc(1, sizeof *m);
  tok__phash_key *keys = NULL;
  tok_err rc = TOK_ENOMEM;
  if (!m) return tok__nomem(err);
  pthread_mutex_init(&m->bt_lock, NULL);
  m->serial = next_serial();
  if (b->n_toks == 0) {
    rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, TOK_NO_POS, "%s: no tokens", what);
    goto fail;
  }
  if (b->bytes.len >= TOK__MAX_TOKEN_BYTES) {
    rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, TOK_NO_POS,
                   "%s: tokens total %zu bytes; at most %u are supported", what, b->bytes.len,
                   TOK__MAX_TOKEN_BYTES - 1);
    goto fail;
  }
  m->by_list = opts->by_list;
  m->byte_level = opts->byte_level;
  m->byte_fallback = opts->byte_fallback;
  m->fuse_unk = opts->fuse_unk;
  m->unk_id = opts->unk_id;
  m->missing_is_error = opts->missing_is_error;

  qsort(b->toks, b->n_toks, sizeof *b->toks, cmp_id);
  for (size_t i = 1; i < b->n_toks; i++)
    if (b->toks[i].id == b->toks[i - 1].id) {
      rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, b->toks[i].id, "%s: id %u appears twice (a rank or id must be unique)", what,
                     b->toks[i].id);
      goto fail;
    }
  m->id_end = b->toks[b->n_toks - 1].id + 1;
  m->n_tokens = (uint32_t)b->n_toks;
  if (!(m->off = calloc((size_t)m->id_end + 1, sizeof *m->off)) ||
      !(m->bytes = malloc(b->bytes.len)) || !(keys = malloc(b->n_toks * sizeof *keys)))
    goto fail;
  size_t n_keys = 0, n_literal = 0;
  for (size_t i = 0; i < b->n_toks; i++) m->off[b->toks[i].id + 1] = b->toks[i].len;
  for (uint32_t i = 0; i < m->id_end; i++) m->off[i + 1] += m->off[i];
  for (size_t i = 0; i < b->n_toks; i++) {
    const tok_rec *t = &b->toks[i];
    memcpy(m->bytes + m->off[t->id], b->bytes.data + t->off, t->len);
    if (t->literal) {
      n_literal++;
      continue;
    }
    keys[n_keys++] = (tok__phash_key){m->bytes + m->off[t->id], t->len,
                                      TOK__ENTRY(t->id, m->off[t->id], t->len)};
    if (t->len > m->max_len) m->max_len = t->len;
  }
  if (n_literal) {
    if (!(m->literal = calloc(((size_t)m->id_end + 63) / 64, sizeof *m->literal))) goto fail;
    for (size_t i = 0; i < b->n_toks; i++)
      if (b->toks[i].literal) tok__bit_set(m->literal, b->toks[i].id);
  }

  if ((m->max_len2 = calloc(65536, 1)))
    for (size_t k = 0; k < n_keys; k++)
      if (keys[k].len >= 2) {
        uint8_t *at = &m->max_len2[(uint32_t)keys[k].bytes[0] << 8 | keys[k].bytes[1]];
        if (keys[k].len > *at) *at = keys[k].len < 255 ? (uint8_t)keys[k].len : 255;
      }
  for (int c = 0; c < 256; c++) m->byte_id[c] = m->fallback_id[c] = TOK__NONE;
  if (m->byte_level && !(m->pair_prio = malloc(65536 * sizeof *m->pair_prio))) goto fail;
  if (m->pair_prio)
    for (int c = 0; c < 65536; c++) m->pair_prio[c] = TOK__NONE;
  for (size_t k = 0; k < n_keys; k++) {
    uint32_t id = (uint32_t)keys[k].value;
    if (!m->byte_level) continue;
    if (keys[k].len == 1) m->byte_id[keys[k].bytes[0]] = id;
    if (keys[k].len == 2 && !m->by_list)
      m->pair_prio[(uint32_t)keys[k].bytes[0] << 8 | keys[k].bytes[1]] = id;
  }

  int built = tok__phash_build(&m->index, keys, (uint32_t)n_keys);
  if (built == -2) {
    rc = tok__fail(err, TOK_EVOCAB, TOK_NO_POS, TOK_NO_POS,
                   "%s: the same token bytes appear twice", what);
    goto fail;
  }
  if (built != 0) goto fail;
  free(keys);
  keys = NULL;

  if (m->byte_fallback)
    for (int c = 0; c < 256; c++) {
      char name[7];
      snprintf(name, sizeof name, "<0x%02X>", c);
      m->fallback_id[c] = tok__model_find(m, (const uint8_t *)name, 6);
    }
  if (m->by_list && (rc = build_merges(b, m, what, err)) != TOK_OK) goto fail;
  if (m->by_list && !opts->ignore_merges && (rc = build_whole_ok(m, err)) != TOK_OK) goto fail;
  find_word_splits(m);
  /* a built-in vocabulary's backtracking tables come ready from the image */
  tok__bt_attach_image(m);
  *out = m;
  return TOK_OK;

fail:
  if (rc == TOK_ENOMEM) tok__fail(err, TOK_ENOMEM, TOK_NO_POS, TOK_NO_POS, "%s: out of memory", what);
  free(keys);
  tok__model_free(m);
  return rc;
}

/* ---------------------------------------------------------------------------------------
 * Images. A built-in vocabulary's model is built at build time too (tools/gen_bt_image.c
 * writes its blob before its backtracking tables' blob; bt_image.S embeds both), and the
 * loader takes it in place of parsing the rank file: no work at start, and the arrays are
 * read-only pages of the executable — shared by replicas on a node, resident only where
 * touched, so an encoding that is loaded but never used costs no memory of its own.
 *
 * A blob of kind TOK__IMAGE_MODEL (image.h: the format, its writer and its checks): the
 * params below, then the arrays as sections. It is found by the sha256 of the rank file it
 * was built from (its key), so it never serves another file.
 */
#define MODEL_IMAGE_VERSION 2
#define MODEL_ARRAYS(X) X(off) X(bytes) X(pilot) X(slot) X(remap) X(max_len2) X(pair_prio)
enum {
#define X(f) MA_##f,
  MODEL_ARRAYS(X)
#undef X
  MA__COUNT
};

typedef struct model_params {
  uint8_t key[32]; /* sha256 of the rank file */
  uint32_t id_end, n_tokens, max_len, missing_is_error;
  uint64_t seed;
  uint32_t ph_n, ph_m, n_buckets, pad;
  uint32_t byte_id[256];
} model_params;

static bool key_of(const char *hex, uint8_t key[32])
{
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (!hex[2 * i] || !hex[2 * i + 1] || sscanf(hex + 2 * i, "%2x", &v) != 1) return false;
    key[i] = (uint8_t)v;
  }
  return hex[64] == '\0';
}

static bool imageable(const tok__model *m)
{
  return m->byte_level && !m->by_list && !m->literal && !m->byte_fallback && m->pair_prio && m->max_len2;
}

/* The sizes each array must have (the token bytes from off's last entry). */
static void model_array_bytes(const model_params *p, uint64_t total_bytes, uint64_t out[MA__COUNT])
{
  out[MA_off] = ((uint64_t)p->id_end + 1) * sizeof(uint32_t);
  out[MA_bytes] = total_bytes;
  out[MA_pilot] = (uint64_t)p->n_buckets * sizeof(uint16_t);
  out[MA_slot] = (uint64_t)p->ph_n * sizeof(tok__phash_slot);
  out[MA_remap] = (uint64_t)(p->ph_m - p->ph_n) * sizeof(uint32_t);
  out[MA_max_len2] = 65536;
  out[MA_pair_prio] = 65536 * sizeof(uint32_t);
}

tok_err tok__model_image_write(const tok__model *m, const char *sha256_hex, FILE *out)
{
  model_params p = {.id_end = m->id_end, .n_tokens = m->n_tokens, .max_len = m->max_len,
                    .missing_is_error = m->missing_is_error, .seed = m->index.seed, .ph_n = m->index.n,
                    .ph_m = m->index.m, .n_buckets = m->index.n_buckets};
  if (!imageable(m) || !key_of(sha256_hex, p.key)) return TOK_OK;
  memcpy(p.byte_id, m->byte_id, sizeof p.byte_id);
  const void *const data[MA__COUNT] = {m->off, m->bytes, m->index.pilot, m->index.slot, m->index.remap,
                                       m->max_len2, m->pair_prio};
  uint64_t bytes[MA__COUNT];
  model_array_bytes(&p, m->off[m->id_end], bytes);
  size_t len;
  uint8_t *blob = tok__image_make(TOK__IMAGE_MODEL, MODEL_IMAGE_VERSION, m->fingerprint, &p, sizeof p, MA__COUNT,
                                  data, bytes, &len);
  if (!blob) return TOK_ENOMEM;
  bool ok = fwrite(blob, 1, len, out) == len;
  free(blob);
  return ok ? TOK_OK : TOK_EIO;
}

/* The model of a blob whose head is checked, or NULL when the blob is not whole (the image
 * is the executable's own, built from the same sources: this guards against a truncated
 * or mismatched build). */
static tok__model *model_from_blob(const tok__image_head *h)
{
  const model_params *p = tok__image_params(h);
  if (p->ph_m < p->ph_n || p->ph_n != p->n_tokens || p->id_end == 0) return NULL;
  /* the token bytes: as long as the head says, which off's last entry must say too */
  uint64_t want[MA__COUNT];
  model_array_bytes(p, h->bytes[MA_bytes], want);
  if (!tok__image_sections_ok(h, want, 0) ||
      ((const uint32_t *)tok__image_section(h, MA_off))[p->id_end] != h->bytes[MA_bytes])
    return NULL;
  tok__model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  pthread_mutex_init(&m->bt_lock, NULL);
  m->serial = next_serial();
  m->in_image = true;
  m->id_end = p->id_end;
  m->n_tokens = p->n_tokens;
  m->max_len = p->max_len;
  m->byte_level = true;
  m->missing_is_error = p->missing_is_error != 0;
  m->unk_id = TOK__NONE;
  m->fingerprint = h->fingerprint;
  memcpy(m->byte_id, p->byte_id, sizeof m->byte_id);
  for (int c = 0; c < 256; c++) m->fallback_id[c] = TOK__NONE;
  m->off = tok__image_section(h, MA_off);
  m->bytes = tok__image_section(h, MA_bytes);
  m->index = (tok__phash){.seed = p->seed, .n = p->ph_n, .m = p->ph_m, .n_buckets = p->n_buckets,
                          .pilot = tok__image_section(h, MA_pilot), .slot = tok__image_section(h, MA_slot),
                          .remap = p->ph_m > p->ph_n ? tok__image_section(h, MA_remap) : NULL};
  m->max_len2 = tok__image_section(h, MA_max_len2);
  m->pair_prio = tok__image_section(h, MA_pair_prio);
  return m;
}

tok__model *tok__model_from_image(const char *sha256_hex)
{
  uint8_t key[32];
  if (!sha256_hex || !key_of(sha256_hex, key)) return NULL;
  for (const tok__image_head *h = NULL; (h = tok__image_builtin_next(h));) {
    if (!tok__image_head_ok(h, h->blob_len, TOK__IMAGE_MODEL, MODEL_IMAGE_VERSION, sizeof(model_params), MA__COUNT) ||
        memcmp(((const model_params *)tok__image_params(h))->key, key, sizeof key))
      continue;
    tok__model *m = model_from_blob(h);
    if (!m) return NULL;
    tok__bt_attach_image(m); /* its tables' blob, by the fingerprint */
    return m;
  }
  return NULL;
}

bool tok__model_same(const tok__model *a, const tok__model *b)
{
  if (a->id_end != b->id_end || a->n_tokens != b->n_tokens || a->max_len != b->max_len ||
      a->byte_level != b->byte_level || a->by_list != b->by_list || a->missing_is_error != b->missing_is_error ||
      a->fingerprint != b->fingerprint || memcmp(a->byte_id, b->byte_id, sizeof a->byte_id) ||
      a->index.seed != b->index.seed || a->index.n != b->index.n || a->index.m != b->index.m ||
      a->index.n_buckets != b->index.n_buckets)
    return false;
  size_t n_bytes = a->off[a->id_end];
  return !memcmp(a->off, b->off, ((size_t)a->id_end + 1) * sizeof *a->off) && b->off[b->id_end] == n_bytes &&
         !memcmp(a->bytes, b->bytes, n_bytes) &&
         !memcmp(a->index.pilot, b->index.pilot, (size_t)a->index.n_buckets * sizeof *a->index.pilot) &&
         !memcmp(a->index.slot, b->index.slot, (size_t)a->index.n * sizeof *a->index.slot) &&
         (a->index.m == a->index.n || !memcmp(a->index.remap, b->index.remap, (size_t)(a->index.m - a->index.n) * 4)) &&
         (!a->max_len2 == !b->max_len2) && (!a->max_len2 || !memcmp(a->max_len2, b->max_len2, 65536)) &&
         (!a->pair_prio == !b->pair_prio) &&
         (!a->pair_prio || !memcmp(a->pair_prio, b->pair_prio, 65536 * sizeof *a->pair_prio));
}
